/*
 * import.c -- moving an instance from the data dir to PostgreSQL without losing its rules.
 *
 * An instance that ran on the data dir keeps its rules in <data_dir>/rules/ (rules_dir.c). When
 * it starts on a shared store, those rules are created in the store through the registry, as
 * POST /rules would create them: validated and compiled by this build, announced to the fleet.
 * A name the store already holds keeps the store's rule (another instance imported or created
 * it first; logged, not an error). Then the directory is renamed rules.imported, so a later
 * start does not import it again: a rule deleted in the fleet stays deleted.
 *
 * A rule that does not compile, or a store that refuses, stops start-up with the directory in
 * place (what was already imported stays; the next start skips those names), exactly as the
 * data dir itself stops start-up on a rule it cannot load: starting without a rule the user
 * expects would drop the messages it should handle.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct import_ctx {
    eng_env *env;
    int imported, kept;
} import_ctx;

static int import_row(void *ud, const eng_rule_row *row, eng_error *e) {
    import_ctx *c = ud;
    if (!row->payload_json)
        return 0;
    eng_rule *r = eng_rule_new(row->name, row->payload_json, strlen(row->payload_json), c->env, e);
    if (!r)
        return -1;
    if (eng_registry_create(c->env->registry, r, e) == 0) {
        c->imported++;
        return 0;
    }
    if (e->status != 409)
        return -1;
    eng_log(ENG_LOG_WARN, "store.import", "rule %s is in the store already: kept the store's "
            "version, not the one in the data dir", row->name);
    c->kept++;
    memset(e, 0, sizeof *e);
    return 0;
}

int eng_store_import_dir_rules(eng_env *env, eng_error *e) {
    const char *data_dir = env->cfg->data_dir;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/rules", data_dir);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return errno == ENOENT ? 0 : eng_error_set(e, 500, "InternalException",
                                                   "cannot read %s: %s", dir, strerror(errno));
    eng_rule_store *local = eng_rule_store_dir_open(data_dir, e);
    if (!local)
        return -1;
    import_ctx c = {.env = env};
    uint64_t upto;
    int rc = local->vt->load(local, import_row, &c, &upto, e);
    local->vt->close(local);
    if (rc != 0)
        return -1;
    /* imported: set the directory aside (kept, not deleted: the user's copy) */
    char to[700];
    snprintf(to, sizeof to, "%s/rules.imported", data_dir);
    if (access(to, F_OK) == 0)
        snprintf(to, sizeof to, "%s/rules.imported.%lld", data_dir, (long long)time(NULL));
    if (rename(dir, to) != 0)
        return eng_error_set(e, 500, "InternalException", "rules imported, but %s cannot be "
                             "renamed to %s: %s", dir, to, strerror(errno));
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    eng_log(ENG_LOG_INFO, "store.import", "%d rules of the data dir imported into the store, "
            "%d kept as the store had them; the data dir's copy is now %s", c.imported, c.kept,
            to);
    return 0;
}
