/*
 * manifests.test.js -- deploy/k8s/*.yaml and deploy/compose.yaml, checked three ways:
 *
 *   1. against the schema: every Kubernetes object against the Kubernetes API's OpenAPI schema
 *      (kubernetes-models' validators: types, required fields, enums, formats), the compose file
 *      against the Compose Specification's JSON schema (the one dclint ships, with ajv);
 *   2. strictly: the OpenAPI schema allows unknown fields, which the API server then drops or
 *      refuses, so each object is also type-checked by TypeScript against kubernetes-models'
 *      declarations, whose excess-property check names any field the API does not have
 *      (a misspelt readOnlyRootFilesystem would otherwise pass, and protect nothing);
 *   3. against what a sluice fleet needs (stable identity and a volume per instance, non-root,
 *      read-only root, probes on the right port, credentials only from a Secret or the
 *      environment, one shared-subscription group, ...), cross-checked with deploy/Dockerfile.
 *
 * Each layer is also shown to reject a broken copy, so none of them passes by doing nothing.
 * Run: cd tests/deploy && npm ci && node --test
 */
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const YAML = require("yaml");
const ts = require("typescript");
const Ajv = require("ajv").default;

const ROOT = path.resolve(__dirname, "../..");
const DEPLOY = path.join(ROOT, "deploy");
const CREDENTIAL_KEYS = ["SLUICE_ADMIN_TOKEN", "SLUICE_ACCESS_KEY_ID", "SLUICE_SECRET_ACCESS_KEY"];
const SECRET_KEY = /PASSWORD|SECRET|TOKEN|ACCESS_KEY|STORE_URL/;

const clone = (o) => JSON.parse(JSON.stringify(o));

/* ---- deploy/Dockerfile: the facts the manifests must agree with -------------------------- */

function dockerfileFacts() {
    const text = fs.readFileSync(path.join(DEPLOY, "Dockerfile"), "utf8");
    const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim());
    const runtime = lines.slice(lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true));
    const env = {};
    let user = null;
    const expose = [];
    for (const l of runtime) {
        let m;
        if ((m = /^USER\s+(\S+)/i.exec(l))) user = m[1];
        if ((m = /^EXPOSE\s+(.+)/i.exec(l))) expose.push(...m[1].split(/\s+/).map((p) => parseInt(p, 10)));
        if ((m = /^ENV\s+(.+)/i.exec(l)))
            for (const kv of m[1].match(/\S+=\S+/g) || []) env[kv.split("=")[0]] = kv.slice(kv.indexOf("=") + 1);
    }
    assert.ok(user && /^\d+:\d+$/.test(user), `Dockerfile: USER must be a numeric uid:gid, is ${user}`);
    const [uid, gid] = user.split(":").map(Number);
    assert.ok(uid > 0 && gid > 0, "Dockerfile: the runtime user must not be root");
    assert.ok(env.SLUICE_DATA_DIR, "Dockerfile: ENV SLUICE_DATA_DIR is not set");
    assert.ok(env.SLUICE_HTTP_ADDR, "Dockerfile: ENV SLUICE_HTTP_ADDR is not set");
    return { uid, gid, dataDir: env.SLUICE_DATA_DIR, httpAddr: env.SLUICE_HTTP_ADDR, expose };
}

const addrPort = (addr) => parseInt(addr.slice(addr.lastIndexOf(":") + 1), 10);

/* ---- Kubernetes ---------------------------------------------------------------------------- */

function loadK8s() {
    const dir = path.join(DEPLOY, "k8s");
    const objs = [];
    for (const f of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
        for (const d of YAML.parseAllDocuments(fs.readFileSync(path.join(dir, f), "utf8"))) {
            if (d.errors.length) throw new Error(`${f}: ${d.errors[0].message}`);
            const o = d.toJS();
            if (o !== null) objs.push({ file: f, obj: o });
        }
    }
    return objs;
}

const where = (o) => `${o.file}: ${o.obj.kind}/${o.obj.metadata && o.obj.metadata.name}`;

function modelModule(obj) {
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string" ||
        !/^[A-Za-z]+$/.test(obj.kind) || !/^[a-z0-9.]*\/?v[0-9a-z]+$/.test(obj.apiVersion))
        return null;
    const mod = `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
    try {
        require.resolve(mod);
        return mod;
    } catch {
        return null;
    }
}

/* 1. The OpenAPI schema. */
function schemaErrors(objs) {
    const errors = [];
    for (const o of objs) {
        const mod = modelModule(o.obj);
        if (!mod) {
            errors.push(`${where(o)}: ${o.obj.apiVersion} ${o.obj.kind} is not a Kubernetes API kind`);
            continue;
        }
        try {
            new (require(mod)[o.obj.kind])(o.obj).validate();
        } catch (e) {
            errors.push(`${where(o)}: ${e.message}`);
        }
    }
    return errors;
}

/* 2. Unknown fields: one TypeScript program assigns each object, as a literal, to its type.
 * Several sets of objects share one program (a compile takes a second). */
function strictErrorsOfSets(sets) {
    const file = path.join(__dirname, "__manifests__.ts");
    const owner = [];
    let src = "";
    sets.forEach((objs, s) => objs.forEach((o, i) => {
        const mod = modelModule(o.obj);
        if (!mod) return;
        const n = owner.length;
        owner.push([s, i]);
        src += `import { I${o.obj.kind} as T${n} } from "${mod}";\n` +
               `export const o${n}: T${n} = ${JSON.stringify(o.obj)};\n`;
    }));
    const options = { noEmit: true, strict: true, module: ts.ModuleKind.CommonJS,
                      moduleResolution: ts.ModuleResolutionKind.Node10, target: ts.ScriptTarget.ES2020,
                      skipLibCheck: true, types: [] };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile;
    host.getSourceFile = (name, lang, ...rest) =>
        path.resolve(name) === file ? ts.createSourceFile(name, src, lang) : getSourceFile(name, lang, ...rest);
    host.fileExists = ((exists) => (name) => path.resolve(name) === file || exists(name))(host.fileExists);
    const program = ts.createProgram([file], options, host);
    const lines = src.split("\n");
    const out = sets.map(() => []);
    for (const d of ts.getPreEmitDiagnostics(program)) {
        const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
        const n = d.file ? parseInt((/^export const o(\d+)/.exec(
            lines[d.file.getLineAndCharacterOfPosition(d.start).line]) || [])[1], 10) : NaN;
        if (Number.isNaN(n)) out.forEach((e) => e.push(msg));
        else out[owner[n][0]].push(`${where(sets[owner[n][0]][owner[n][1]])}: ${msg}`);
    }
    return out;
}

const strictErrors = (objs) => strictErrorsOfSets([objs])[0];

const selects = (selector, labels) =>
    !!selector && Object.keys(selector).length > 0 &&
    Object.entries(selector).every(([k, v]) => labels && labels[k] === v);

/* 3. What a sluice fleet needs. */
function fleetErrors(objs, df) {
    const errors = [];
    const err = (m) => errors.push(m);
    const of = (kind) => objs.map((o) => o.obj).filter((o) => o.kind === kind);
    const byName = (kind, name) => of(kind).find((o) => o.metadata && o.metadata.name === name);
    const sets = of("StatefulSet");
    if (sets.length !== 1) return [`expected one StatefulSet, found ${sets.length}`];
    const sts = sets[0];
    const spec = sts.spec || {};
    const pod = (spec.template && spec.template.spec) || {};
    const labels = (spec.template && spec.template.metadata && spec.template.metadata.labels) || {};
    const ctrs = pod.containers || [];
    if (ctrs.length !== 1) return [`expected one container in the StatefulSet, found ${ctrs.length}`];
    const c = ctrs[0];
    const cm = of("ConfigMap").reduce((a, o) => Object.assign(a, o.data || {}), {});

    if (!selects(spec.selector && spec.selector.matchLabels, labels))
        err("StatefulSet: its selector does not match its pod template's labels");
    if (!(spec.replicas >= 2)) err("StatefulSet: a fleet needs at least 2 replicas");

    const headless = byName("Service", spec.serviceName);
    if (!headless || headless.spec.clusterIP !== "None")
        err(`StatefulSet: serviceName ${spec.serviceName} must name a headless Service in the set`);
    for (const s of of("Service"))
        if (!selects(s.spec.selector, labels)) err(`Service/${s.metadata.name}: selects no sluice pod`);
    const pdbs = of("PodDisruptionBudget");
    if (pdbs.length !== 1) err("expected one PodDisruptionBudget");
    for (const p of pdbs) {
        if (!selects(p.spec.selector && p.spec.selector.matchLabels, labels))
            err(`PodDisruptionBudget/${p.metadata.name}: selects no sluice pod`);
        const blocks = p.spec.maxUnavailable !== undefined ? !(p.spec.maxUnavailable >= 1)
                                                           : !(p.spec.minAvailable < spec.replicas);
        if (blocks) err(`PodDisruptionBudget/${p.metadata.name}: allows no disruption (drains would hang)`);
    }

    /* non-root, read-only root, nothing to escalate */
    const psc = pod.securityContext || {};
    const csc = c.securityContext || {};
    const runAs = csc.runAsUser !== undefined ? csc.runAsUser : psc.runAsUser;
    if (runAs !== df.uid) err(`container: runs as uid ${runAs}, the image's user is ${df.uid}`);
    if (!(csc.runAsNonRoot === true || (psc.runAsNonRoot === true && csc.runAsNonRoot === undefined)))
        err("container: runAsNonRoot must be true");
    if (csc.readOnlyRootFilesystem !== true) err("container: readOnlyRootFilesystem must be true");
    if (csc.allowPrivilegeEscalation !== false) err("container: allowPrivilegeEscalation must be false");
    if (!(csc.capabilities && (csc.capabilities.drop || []).includes("ALL")))
        err("container: capabilities must drop ALL");
    if (psc.fsGroup !== df.gid) err(`pod: fsGroup must be the image's gid ${df.gid} (a writable volume)`);

    /* the data dir: a volume of each instance's own */
    const dataDir = cm.SLUICE_DATA_DIR || df.dataDir;
    if (dataDir !== df.dataDir) err(`ConfigMap: SLUICE_DATA_DIR ${dataDir} is not the image's volume ${df.dataDir}`);
    const mount = (c.volumeMounts || []).find((m) => m.mountPath === dataDir);
    const claims = (spec.volumeClaimTemplates || []).map((t) => t.metadata.name);
    if (!mount || !claims.includes(mount.name) || mount.readOnly)
        err(`container: ${dataDir} must be a writable volume from the StatefulSet's volumeClaimTemplates`);

    /* environment: identity, credentials */
    const env = c.env || [];
    const envIdx = (n) => env.findIndex((e) => e.name === n);
    const cid = env[envIdx("SLUICE_MQTT_CLIENT_ID")];
    const refs = cid && cid.value ? [...cid.value.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)].map((m) => m[1]) : [];
    const fromPodName = refs.some((r) => {
        const i = envIdx(r);
        return i >= 0 && i < envIdx("SLUICE_MQTT_CLIENT_ID") && env[i].valueFrom &&
               env[i].valueFrom.fieldRef && env[i].valueFrom.fieldRef.fieldPath === "metadata.name";
    });
    if (!fromPodName)
        err("container: SLUICE_MQTT_CLIENT_ID must be built from the pod's name (an earlier env var with fieldRef metadata.name)");
    if (!cm.SLUICE_MQTT_SHARED_GROUP) err("ConfigMap: SLUICE_MQTT_SHARED_GROUP must be set (the fleet splits the traffic)");
    if (!/^(0\.0\.0\.0|\[::\]):\d+$/.test(cm.SLUICE_HTTP_ADDR || df.httpAddr))
        err("sluice must listen on all addresses in a pod (probes and the Service reach it there)");
    for (const o of objs.map((x) => x.obj)) {
        if (o.kind === "ConfigMap")
            for (const k of Object.keys(o.data || {}))
                if (SECRET_KEY.test(k) || k === "SLUICE_INSECURE_NO_AUTH")
                    err(`ConfigMap/${o.metadata.name}: ${k} belongs in a Secret`);
        if (o.kind === "Secret" && (Object.keys(o.data || {}).length || Object.keys(o.stringData || {}).length))
            err(`Secret/${o.metadata.name}: the repository must not hold credential values`);
    }
    for (const e of env) {
        if (e.name === "SLUICE_INSECURE_NO_AUTH") err("container: SLUICE_INSECURE_NO_AUTH must not be set");
        if (SECRET_KEY.test(e.name) && !(e.valueFrom && e.valueFrom.secretKeyRef))
            err(`container: ${e.name} must come from a Secret, not a literal`);
        const ref = e.valueFrom && e.valueFrom.secretKeyRef;
        if (ref && !byName("Secret", ref.name)) err(`container: env ${e.name} names a missing Secret ${ref.name}`);
    }
    if (!env.some((e) => e.name === "SLUICE_STORE_URL" && e.valueFrom && e.valueFrom.secretKeyRef &&
                         !e.valueFrom.secretKeyRef.optional))
        err("container: SLUICE_STORE_URL must come, required, from a Secret (the fleet's shared store)");
    const secretRefs = (c.envFrom || []).filter((e) => e.secretRef).map((e) => e.secretRef);
    if (!secretRefs.some((r) => byName("Secret", r.name)))
        err(`container: the API credentials (${CREDENTIAL_KEYS.join(", ")}) must come from a Secret in the set (envFrom)`);
    for (const r of (c.envFrom || []).filter((e) => e.configMapRef))
        if (!byName("ConfigMap", r.configMapRef.name)) err(`container: envFrom names a missing ConfigMap ${r.configMapRef.name}`);

    /* probes on the port sluice listens on */
    const port = addrPort(cm.SLUICE_HTTP_ADDR || df.httpAddr);
    if (!df.expose.includes(port)) err(`sluice listens on ${port}, the image exposes ${df.expose}`);
    const named = Object.fromEntries((c.ports || []).map((p) => [p.name, p.containerPort]));
    const probe = (name, wantPath) => {
        const p = c[name];
        const g = p && p.httpGet;
        if (!g || g.path !== wantPath) return err(`container: ${name} must GET ${wantPath}`);
        const pn = typeof g.port === "string" ? named[g.port] : g.port;
        if (pn !== port) err(`container: ${name} probes port ${g.port}, sluice listens on ${port}`);
    };
    probe("livenessProbe", "/healthz");
    probe("readinessProbe", "/readyz");
    if (c.startupProbe) probe("startupProbe", "/healthz");
    for (const s of of("Service"))
        for (const p of s.spec.ports || []) {
            const tp = typeof p.targetPort === "string" ? named[p.targetPort] : p.targetPort || p.port;
            if (tp !== port) err(`Service/${s.metadata.name}: targets port ${p.targetPort}, sluice listens on ${port}`);
        }
    if (!(pod.terminationGracePeriodSeconds >= 30))
        err("pod: terminationGracePeriodSeconds must leave time to drain (>= 30)");
    return errors;
}

/* Every error of each set of objects, by all three checks. */
const k8sErrorsOfSets = (sets, df) => strictErrorsOfSets(sets).map((strict, i) =>
    [...schemaErrors(sets[i]), ...strict, ...fleetErrors(sets[i], df)]);

/* ---- Compose ------------------------------------------------------------------------------- */

function composeValidator() {
    /* The Compose Specification's schema, as dclint ships it (draft-07). */
    const file = path.join(path.dirname(require.resolve("dclint/package.json")), "schemas/compose.schema.json");
    const schema = JSON.parse(fs.readFileSync(file, "utf8"));
    delete schema.$schema;
    return new Ajv({ strict: false, allErrors: true }).compile(schema);
}

function loadCompose() {
    return YAML.parse(fs.readFileSync(path.join(DEPLOY, "compose.yaml"), "utf8"), { merge: true });
}

/* Compose's interpolation (${V}, ${V:-d}, ${V-d}, ${V:?e}, ${V?e}, $$) over every string. */
function interpolate(node, vars) {
    if (typeof node === "string")
        return node.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
            (all, name, colon, op, arg, bare) => {
                if (all === "$$") return "$";
                if (bare) return vars[bare] || "";
                const v = vars[name];
                const missing = v === undefined || (colon && v === "");
                if (op === "?" && missing) throw new Error(`required variable ${name}: ${arg}`);
                if (op === "-" && missing) return arg;
                return v || "";
            });
    if (Array.isArray(node)) return node.map((x) => interpolate(x, vars));
    if (node && typeof node === "object")
        return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolate(v, vars)]));
    return node;
}

function composeErrors(doc, df, validate) {
    const errors = [];
    const err = (m) => errors.push(m);
    if (!validate(doc))
        for (const e of validate.errors) err(`compose schema: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
    const services = doc.services || {};
    const envOf = (s) => Array.isArray(s.environment)
        ? Object.fromEntries(s.environment.map((kv) => [kv.split("=")[0], kv.includes("=") ? kv.slice(kv.indexOf("=") + 1) : null]))
        : s.environment || {};
    const volumeAt = (s, target) => (s.volumes || []).map((v) => typeof v === "string"
        ? { source: v.split(":")[0], target: v.split(":")[1] } : v).find((v) => v.target === target);

    /* no literal credentials anywhere; every published port on 127.0.0.1 */
    for (const [name, s] of Object.entries(services)) {
        for (const [k, v] of Object.entries(envOf(s)))
            if (SECRET_KEY.test(k) && v !== null && !/\$\{[A-Za-z_]/.test(String(v)))
                err(`${name}: ${k} is a literal; credentials come from the environment or .env`);
        for (const p of s.ports || []) {
            const host = typeof p === "object" ? p.host_ip : String(p).split(":").length === 3 ? String(p).split(":")[0] : null;
            if (host !== "127.0.0.1") err(`${name}: port ${JSON.stringify(p)} must be published on 127.0.0.1 only`);
        }
    }

    const sluices = Object.entries(services).filter(([, s]) =>
        (s.build && s.build.dockerfile === "deploy/Dockerfile") || /^sluice(:|$)/.test(s.image || ""));
    if (sluices.length < 3) err(`expected at least 3 sluice services, found ${sluices.length}`);
    const ids = new Set();
    const vols = new Set();
    const groups = new Set();
    const stores = new Set();
    for (const [name, s] of sluices) {
        const env = envOf(s);
        if (!s.build || path.resolve(DEPLOY, s.build.context || ".") !== ROOT ||
            !fs.existsSync(path.join(ROOT, s.build.dockerfile || "Dockerfile")))
            err(`${name}: must build deploy/Dockerfile from the repository root`);
        if (!env.SLUICE_MQTT_CLIENT_ID || ids.has(env.SLUICE_MQTT_CLIENT_ID))
            err(`${name}: needs an MQTT client id of its own (a stable persistent session)`);
        ids.add(env.SLUICE_MQTT_CLIENT_ID);
        const v = volumeAt(s, env.SLUICE_DATA_DIR || df.dataDir);
        if (!v || !(doc.volumes && v.source in doc.volumes) || vols.has(v.source))
            err(`${name}: needs a named volume of its own at ${df.dataDir} (its ingest journal)`);
        if (v) vols.add(v.source);
        groups.add(env.SLUICE_MQTT_SHARED_GROUP || "");
        stores.add(env.SLUICE_STORE_URL || "");
        for (const k of CREDENTIAL_KEYS)
            if (!(k in env) || env[k] !== null) err(`${name}: ${k} must be listed without a value (from .env or the environment)`);
        if ("SLUICE_INSECURE_NO_AUTH" in env && env.SLUICE_INSECURE_NO_AUTH !== null)
            err(`${name}: SLUICE_INSECURE_NO_AUTH must not be set in the file`);
        if (!s.depends_on || !s.depends_on.mosquitto || !s.depends_on.postgres)
            err(`${name}: must depend on mosquitto and postgres`);
        if (s.read_only !== true) err(`${name}: the root filesystem must be read-only`);
    }
    if (groups.size !== 1 || groups.has("")) err("the sluice services must share one SLUICE_MQTT_SHARED_GROUP");
    if (stores.size !== 1 || ![...stores][0].startsWith("postgresql://"))
        err("the sluice services must share one SLUICE_STORE_URL=postgresql://...");
    else if (!/@postgres[:/]/.test([...stores][0])) err("SLUICE_STORE_URL must name the postgres service");

    const m = services.mosquitto;
    const conf = m && volumeAt(m, "/mosquitto/config/mosquitto.conf");
    if (!conf) err("mosquitto: must mount deploy/mosquitto.conf at /mosquitto/config/mosquitto.conf");
    else {
        const file = path.resolve(DEPLOY, conf.source);
        const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
        const opt = (k) => (new RegExp(`^${k}\\s+(\\S+)`, "m").exec(text) || [])[1];
        if (opt("persistence") !== "true") err("mosquitto.conf: persistence must be on");
        if (!(parseInt(opt("max_queued_messages"), 10) >= 100000))
            err("mosquitto.conf: max_queued_messages must hold a restart's traffic (>= 100000)");
        if (!(parseInt(opt("max_queued_bytes"), 10) >= 100 * 1024 * 1024))
            err("mosquitto.conf: max_queued_bytes must hold a restart's traffic (>= 100 MiB)");
        if (!volumeAt(m, (opt("persistence_location") || "").replace(/\/$/, "")))
            err("mosquitto: persistence_location must be a volume");
    }
    const pg = services.postgres;
    if (!pg || !/^postgres:/.test(pg.image || "") || !pg.healthcheck) err("postgres: a PostgreSQL service with a healthcheck");
    return errors;
}

/* ---- the tests ----------------------------------------------------------------------------- */

const df = dockerfileFacts();
const k8s = loadK8s();
const compose = loadCompose();
const validateCompose = composeValidator();
const sts = () => k8s.findIndex((o) => o.obj.kind === "StatefulSet");
const mutate = (objs, i, f) => {
    const copy = objs.map((o) => ({ file: o.file, obj: clone(o.obj) }));
    f(copy[i].obj);
    return copy;
};
const ctr = (o) => o.spec.template.spec.containers[0];

test("deploy/k8s: the expected objects", () => {
    const kinds = k8s.map((o) => o.obj.kind).sort();
    for (const k of ["ConfigMap", "PodDisruptionBudget", "Secret", "Service", "StatefulSet"])
        assert.ok(kinds.includes(k), `no ${k} in deploy/k8s`);
});

test("deploy/k8s: valid against the Kubernetes API schema", () => {
    assert.deepEqual(schemaErrors(k8s), []);
});

test("deploy/k8s: no field the Kubernetes API does not have", () => {
    assert.deepEqual(strictErrors(k8s), []);
});

test("deploy/k8s: what a sluice fleet needs", () => {
    assert.deepEqual(fleetErrors(k8s, df), []);
});

test("deploy/k8s: each check rejects a broken copy", () => {
    const cases = [
        ["a wrong type", (o) => { o.spec.replicas = "3"; }, /replicas must be integer/],
        ["a missing required field", (o) => { delete o.spec.selector; }, /required property 'selector'|required property selector/],
        ["an unknown kind", (o) => { o.kind = "StatefulSets"; }, /not a Kubernetes API kind/],
        ["a misspelt field", (o) => { ctr(o).securityContext.readOnlyRootFileSystem = true; delete ctr(o).securityContext.readOnlyRootFilesystem; },
            /'\W*readOnlyRootFileSystem\W*' does not exist in type 'ISecurityContext'/],
        ["a field at the wrong level", (o) => { o.spec.template.spec.securityContext.readOnlyRootFilesystem = true; },
            /'\W*readOnlyRootFilesystem\W*' does not exist in type 'IPodSecurityContext'/],
        ["root", (o) => { o.spec.template.spec.securityContext.runAsUser = 0; }, /runs as uid 0/],
        ["a writable root filesystem", (o) => { ctr(o).securityContext.readOnlyRootFilesystem = false; }, /readOnlyRootFilesystem must be true/],
        ["no volume per instance", (o) => { delete o.spec.volumeClaimTemplates; }, /writable volume from the StatefulSet's volumeClaimTemplates/],
        ["a client id not tied to the pod", (o) => { ctr(o).env.find((e) => e.name === "SLUICE_MQTT_CLIENT_ID").value = "sluice"; },
            /SLUICE_MQTT_CLIENT_ID must be built from the pod's name/],
        ["a literal token", (o) => { ctr(o).env.push({ name: "SLUICE_ADMIN_TOKEN", value: "hunter2" }); },
            /SLUICE_ADMIN_TOKEN must come from a Secret/],
        ["a probe on the wrong path", (o) => { ctr(o).readinessProbe.httpGet.path = "/healthz"; }, /readinessProbe must GET \/readyz/],
        ["a probe on the wrong port", (o) => { ctr(o).livenessProbe.httpGet.port = 9090; }, /livenessProbe probes port 9090/],
    ];
    const secret = k8s.findIndex((o) => o.obj.kind === "Secret");
    const pdb = k8s.findIndex((o) => o.obj.kind === "PodDisruptionBudget");
    const sets = cases.map(([, f]) => mutate(k8s, sts(), f));
    cases.push(["a committed Secret value", null, /must not hold credential values/]);
    sets.push(mutate(k8s, secret, (o) => { o.stringData = { SLUICE_ADMIN_TOKEN: "x" }; }));
    cases.push(["a PodDisruptionBudget that blocks drains", null, /allows no disruption/]);
    sets.push(mutate(k8s, pdb, (o) => { delete o.spec.maxUnavailable; o.spec.minAvailable = 3; }));
    k8sErrorsOfSets(sets, df).forEach((errors, i) => {
        const [what, , want] = cases[i];
        assert.ok(errors.some((e) => want.test(e)), `${what}: not rejected as ${want}; got ${JSON.stringify(errors)}`);
    });
});

test("deploy/compose.yaml: valid against the Compose Specification, and a fleet", () => {
    assert.deepEqual(composeErrors(compose, df, validateCompose), []);
});

test("deploy/compose.yaml: POSTGRES_PASSWORD is required, and lands in the store URL", () => {
    assert.throws(() => interpolate(compose, {}), /required variable POSTGRES_PASSWORD/);
    const resolved = interpolate(compose, { POSTGRES_PASSWORD: "s3cr3t" });
    assert.ok(validateCompose(resolved), JSON.stringify(validateCompose.errors));
    for (const [name, s] of Object.entries(resolved.services).filter(([n]) => n.startsWith("sluice")))
        assert.equal(s.environment.SLUICE_STORE_URL, "postgresql://sluice:s3cr3t@postgres:5432/sluice", name);
    assert.equal(resolved.services.postgres.environment.POSTGRES_PASSWORD, "s3cr3t");
});

test("deploy/compose.yaml: each check rejects a broken copy", () => {
    const cases = [
        ["an unknown service key", (d) => { d.services["sluice-2"].restart_policy = "always"; }, /compose schema: \/services\/sluice-2 must NOT have additional properties/],
        ["a wrong type", (d) => { d.services.postgres.volumes = "postgres-data"; }, /compose schema: \/services\/postgres\/volumes must be array/],
        ["a literal token", (d) => { d.services["sluice-1"].environment.SLUICE_ADMIN_TOKEN = "hunter2"; }, /SLUICE_ADMIN_TOKEN is a literal/],
        ["a literal password", (d) => { d.services.postgres.environment.POSTGRES_PASSWORD = "hunter2"; }, /POSTGRES_PASSWORD is a literal/],
        ["a shared client id", (d) => { d.services["sluice-2"].environment.SLUICE_MQTT_CLIENT_ID = "sluice-1"; }, /MQTT client id of its own/],
        ["a shared data volume", (d) => { d.services["sluice-3"].volumes = ["sluice-1-data:/var/lib/sluice"]; }, /named volume of its own/],
        ["no shared group", (d) => { delete d.services["sluice-3"].environment.SLUICE_MQTT_SHARED_GROUP; }, /share one SLUICE_MQTT_SHARED_GROUP/],
        ["a port on every address", (d) => { d.services.mosquitto.ports = ["1883:1883"]; }, /published on 127.0.0.1 only/],
        ["two replicas", (d) => { delete d.services["sluice-3"]; }, /at least 3 sluice services/],
    ];
    for (const [what, f, want] of cases) {
        const d = clone(compose);
        f(d);
        const errors = composeErrors(d, df, validateCompose);
        assert.ok(errors.some((e) => want.test(e)), `${what}: not rejected as ${want}; got ${JSON.stringify(errors)}`);
    }
});

test("deploy/env.example: names every credential, holds no value", () => {
    const text = fs.readFileSync(path.join(DEPLOY, "env.example"), "utf8");
    for (const k of [...CREDENTIAL_KEYS, "POSTGRES_PASSWORD"])
        assert.match(text, new RegExp(`^#? ?${k}=`, "m"), `${k} is not documented in env.example`);
    for (const line of text.split("\n").filter((l) => /^[A-Z_]+=/.test(l)))
        assert.match(line, /=$/, `env.example sets a value: ${line}`);
});
