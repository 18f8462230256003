#!/usr/bin/env python3
"""recursion_check.py -- every recursion in sql/ is one whose depth a limit bounds.

Compiles each sql/*.c with GCC's -fcallgraph-info (at -O0, so that no inlining hides a call),
joins the per-file call graphs, and finds every cycle (strongly connected component). Each
cycle must be in BOUNDED below, with the limit that bounds its depth (sql/README.md, "Limits");
a new recursive function fails this test until its bound is stated here and tested in
tests/sql/test_limits.c. Calls through function pointers (the VM calling builtins) are not in
the graph: no builtin calls back into the VM or the compiler.

usage: recursion_check.py SQL_DIR [CC]
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

# cycle (set of "file.c:function") -> what bounds its depth
BOUNDED = {
    frozenset({"parser.c:expr", "parser.c:subexpr", "parser.c:postfix", "parser.c:primary",
               "parser.c:call_args", "parser.c:cast_expr", "parser.c:case_expr",
               "parser.c:array_lit", "parser.c:object_lit", "parser.c:select_core",
               "parser.c:items"}):
        "P.depth (subexpr calls in progress) <= SQL_MAX_DEPTH",
    frozenset({"compile.c:expr", "compile.c:call", "compile.c:cast_expr", "compile.c:literal",
               "compile.c:case_expr", "compile.c:nested_select", "compile.c:items"}):
        "expression height <= SQL_MAX_DEPTH",
    frozenset({"compile.c:konst", "compile.c:konst_call", "compile.c:konst_literal"}):
        "expression height <= SQL_MAX_DEPTH",
    frozenset({"compile.c:collect", "compile.c:collect_select"}):
        "expression height <= SQL_MAX_DEPTH",
    frozenset({"compile.c:keep_value"}):
        "constant values: expression height + SQL_JSON_MAX_DEPTH",
    frozenset({"compile.c:assign_slots"}): "path trie depth <= MAX_PATH (32)",
    frozenset({"compile.c:count_slots"}): "path trie depth <= MAX_PATH (32)",
    frozenset({"exec.c:put_path"}): "path trie depth <= MAX_PATH (32)",
    frozenset({"scan.c:merge"}): "a program's path trie depth <= MAX_PATH (32)",
    frozenset({"json_read.c:value", "json_read.c:object", "json_read.c:array"}):
        "jr.depth <= SQL_JSON_MAX_DEPTH",
    frozenset({"json_read.c:scan_object"}): "path trie depth and SQL_JSON_MAX_DEPTH",
    frozenset({"json_read.c:settle"}): "path trie depth <= MAX_PATH (32)",
    frozenset({"json_read.c:skip"}): "one level: containers are skipped in a loop",
    frozenset({"json_write.c:write"}): "depth argument < SQL_MAX_VALUE_DEPTH",
    frozenset({"ops.c:equal"}): "depth argument < SQL_MAX_VALUE_DEPTH",
    frozenset({"convert.c:sql__cast"}): "one level: Double casts through Decimal",
}


def graph(sql_dir, cc, work):
    defined = {}  # bare name -> qualified names defined with it
    edges = {}
    for src in sorted(glob.glob(os.path.join(sql_dir, "*.c"))):
        base = os.path.basename(src)
        ci = os.path.join(work, base[:-2] + ".ci")
        subprocess.run([cc, "-std=gnu11", "-O0", "-c", "-fcallgraph-info", "-I", sql_dir,
                        "-o", os.path.join(work, base[:-2] + ".o"), src],
                       check=True, cwd=work)
        if not os.path.exists(ci):
            sys.exit("no call graph for %s (does %s support -fcallgraph-info?)" % (src, cc))
        for line in open(ci):
            # functions defined here: "path:name" when static, a bare name when exported;
            # external ones are drawn as ellipses
            m = re.match(r'node: \{ title: "([^"]+)".*', line)
            if m and "shape : ellipse" not in line:
                name = m.group(1).rsplit(":", 1)[-1]
                defined.setdefault(name, set()).add(base + ":" + name)
            m = re.match(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', line)
            if m:
                s = base + ":" + m.group(1).rsplit(":", 1)[-1]
                t = m.group(2)
                t = base + ":" + t.rsplit(":", 1)[1] if ":" in t else t
                edges.setdefault(s, set()).add(t)
    # a bare target is an extern function: the one definition with that name, if in sql/
    for s in edges:
        resolved = set()
        for t in edges[s]:
            if ":" not in t:  # exported: defined in exactly one file of sql/, or outside
                ds = defined.get(t, set())
                resolved |= ds if len(ds) == 1 else set()
            else:
                resolved.add(t)
        edges[s] = resolved
    return edges


def cycles(edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(frozenset(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    sql_dir = os.path.abspath(sys.argv[1])
    cc = sys.argv[2] if len(sys.argv) > 2 else "gcc"
    with tempfile.TemporaryDirectory() as work:
        found = cycles(graph(sql_dir, cc, work))
    bad = 0
    for c in sorted(found, key=sorted):
        bound = BOUNDED.get(c)
        names = ", ".join(sorted(c))
        if bound:
            print("ok: %s -- %s" % (names, bound))
        else:
            print("UNBOUNDED? %s: state its limit in recursion_check.py and test it" % names)
            bad += 1
    missing = set(BOUNDED) - set(found)
    for c in missing:
        print("note: listed cycle no longer recursive: %s" % ", ".join(sorted(c)))
    print("%d recursive cycles, %d without a stated bound" % (len(found), bad))
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
