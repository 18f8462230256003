/*
 * tz.c -- time zones for parse_time() and time_to_epoch(), from the system zoneinfo files.
 *
 * AWS's time functions take Joda / java.time zone ids ("America/Belize", "UTC",
 * "UTC+01:00"). Region ids are read from the compiled TZif files of the tzdata package
 * (/usr/share/zoneinfo, or $TZDIR): the 64-bit transition table, and for instants after the
 * last transition the POSIX TZ rule in the file's footer (slim TZif files rely on it). Fixed
 * offsets ("+01:00", "UTC-5", "GMT+3") need no file. Zones are loaded on first use and kept
 * for the life of the process in a small list under a mutex; lookups of a loaded zone take
 * the mutex once. This file is the only I/O in sql/. Rejected alternative: setenv("TZ") with
 * localtime_r(), which is neither thread-safe nor able to hold two zones at once.
 */
#include "sql_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ttype {
    int32_t off;
    int isdst;
    char abbr[16];
} ttype;

/* A POSIX TZ rule: std offset, optional dst offset and its start/end rules. */
typedef struct rule_date {
    int kind; /* 'M' month.week.day, 'J' julian 1..365 (no Feb 29), 'D' day 0..365 */
    int m, w, d;
    int32_t time; /* seconds after local midnight */
} rule_date;

typedef struct posix_tz {
    int valid, has_dst;
    ttype std, dst;
    rule_date start, end;
} posix_tz;

struct sql_tz {
    struct sql_tz *next;
    char name[128];
    int64_t *trans; /* transition instants, ascending */
    uint8_t *idx;   /* type index after each transition */
    uint32_t ntrans;
    ttype *types;
    uint32_t ntypes;
    posix_tz footer;
};

static pthread_mutex_t zones_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sql_tz *zones; /* guarded by zones_mu; entries are never freed */

/* {====== POSIX TZ strings ("CST6CDT,M3.2.0,M11.1.0", "<+0530>-5:30") */

static const char *parse_abbr(const char *s, char *out) {
    size_t n = 0;
    if (*s == '<') {
        s++;
        while (*s && *s != '>' && n < 15)
            out[n++] = *s++;
        if (*s != '>')
            return NULL;
        s++;
    } else {
        while (isalpha((unsigned char)*s) && n < 15)
            out[n++] = *s++;
        if (n < 3)
            return NULL;
    }
    out[n] = '\0';
    return s;
}

/* [+-]hh[:mm[:ss]] -> seconds */
static const char *parse_hms(const char *s, int32_t *out) {
    int sign = 1;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*s))
        return NULL;
    int32_t h = 0, m = 0, sec = 0;
    while (isdigit((unsigned char)*s))
        h = h * 10 + (*s++ - '0');
    if (*s == ':') {
        s++;
        while (isdigit((unsigned char)*s))
            m = m * 10 + (*s++ - '0');
        if (*s == ':') {
            s++;
            while (isdigit((unsigned char)*s))
                sec = sec * 10 + (*s++ - '0');
        }
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return s;
}

static const char *parse_rule(const char *s, rule_date *r) {
    r->time = 7200;
    if (*s == 'M') {
        r->kind = 'M';
        if (sscanf(s + 1, "%d.%d.%d", &r->m, &r->w, &r->d) != 3)
            return NULL;
        s++;
        while (*s && *s != '/' && *s != ',')
            s++;
    } else if (*s == 'J') {
        r->kind = 'J';
        r->d = atoi(++s);
        while (isdigit((unsigned char)*s))
            s++;
    } else if (isdigit((unsigned char)*s)) {
        r->kind = 'D';
        r->d = atoi(s);
        while (isdigit((unsigned char)*s))
            s++;
    } else {
        return NULL;
    }
    if (*s == '/') {
        s = parse_hms(s + 1, &r->time);
        if (!s)
            return NULL;
    }
    return s;
}

static int parse_posix(const char *s, posix_tz *z) {
    memset(z, 0, sizeof *z);
    int32_t off;
    if (!(s = parse_abbr(s, z->std.abbr)) || !(s = parse_hms(s, &off)))
        return -1;
    z->std.off = -off; /* POSIX offsets are west-positive */
    z->valid = 1;
    if (!*s)
        return 0;
    if (!(s = parse_abbr(s, z->dst.abbr)))
        return -1;
    z->dst.off = z->std.off + 3600;
    z->dst.isdst = 1;
    if (*s && *s != ',') {
        if (!(s = parse_hms(s, &off)))
            return -1;
        z->dst.off = -off;
    }
    if (*s != ',' || !(s = parse_rule(s + 1, &z->start)) || *s != ',' ||
        !(s = parse_rule(s + 1, &z->end)))
        return -1;
    z->has_dst = 1;
    return 0;
}

/* }====== */

/* {====== civil calendar */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
int64_t sql__days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Local seconds (since the epoch, in local time) at which rule r fires in year y. */
static int64_t rule_local(const rule_date *r, int64_t y) {
    int64_t day;
    if (r->kind == 'M') {
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int64_t first = sql__days_from_civil(y, r->m, 1);
        int wd_first = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
        int delta = (r->d - wd_first + 7) % 7;
        int dim = mdays[r->m - 1] + (r->m == 2 && is_leap(y));
        int dom = 1 + delta + (r->w - 1) * 7;
        while (dom > dim)
            dom -= 7;
        day = first + dom - 1;
    } else if (r->kind == 'J') {
        int64_t jan1 = sql__days_from_civil(y, 1, 1);
        int d = r->d;
        day = jan1 + d - 1 + (is_leap(y) && d >= 60);
    } else {
        day = sql__days_from_civil(y, 1, 1) + r->d;
    }
    return day * 86400 + r->time;
}

static int64_t year_of(int64_t secs) {
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    return y + (m <= 2);
}

static const ttype *posix_at(const posix_tz *z, int64_t utc) {
    if (!z->has_dst)
        return &z->std;
    int64_t y = year_of(utc + z->std.off);
    /* start is given in standard local time, end in daylight local time */
    int64_t start = rule_local(&z->start, y) - z->std.off;
    int64_t end = rule_local(&z->end, y) - z->dst.off;
    int in_dst = start < end ? (utc >= start && utc < end) : !(utc >= end && utc < start);
    return in_dst ? &z->dst : &z->std;
}

/* }====== */

/* {====== TZif files */

static int64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    if (n == 4)
        return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

static int load_tzif(struct sql_tz *z, const unsigned char *b, size_t n) {
    if (n < 44 || memcmp(b, "TZif", 4) != 0)
        return -1;
    int version = b[4];
    const unsigned char *p = b;
    int tsize = 4;
    for (int pass = 0; pass < 2; pass++) {
        if ((size_t)(p - b) + 44 > n)
            return -1;
        uint32_t isut = (uint32_t)be(p + 20, 4), isstd = (uint32_t)be(p + 24, 4),
                 leap = (uint32_t)be(p + 28, 4), timecnt = (uint32_t)be(p + 32, 4),
                 typecnt = (uint32_t)be(p + 36, 4), charcnt = (uint32_t)be(p + 40, 4);
        size_t body = (size_t)timecnt * tsize + timecnt + typecnt * 6 + charcnt +
                      (size_t)leap * (tsize + 4) + isstd + isut;
        const unsigned char *d = p + 44;
        if ((size_t)(d - b) + body > n)
            return -1;
        if (pass == 0 && version >= '2') { /* skip the 32-bit block, read the 64-bit one */
            p = d + body;
            tsize = 8;
            continue;
        }
        if (typecnt == 0 || typecnt > 256)
            return -1;
        z->trans = calloc(timecnt + 1, sizeof *z->trans);
        z->idx = calloc(timecnt + 1, 1);
        z->types = calloc(typecnt, sizeof *z->types);
        if (!z->trans || !z->idx || !z->types)
            return -1;
        for (uint32_t i = 0; i < timecnt; i++)
            z->trans[i] = be(d + (size_t)i * tsize, tsize);
        const unsigned char *ix = d + (size_t)timecnt * tsize;
        for (uint32_t i = 0; i < timecnt; i++)
            z->idx[i] = ix[i] < typecnt ? ix[i] : 0;
        const unsigned char *tt = ix + timecnt;
        const char *chars = (const char *)(tt + typecnt * 6);
        for (uint32_t i = 0; i < typecnt; i++) {
            z->types[i].off = (int32_t)be(tt + i * 6, 4);
            z->types[i].isdst = tt[i * 6 + 4];
            unsigned ai = tt[i * 6 + 5];
            if (ai < charcnt)
                snprintf(z->types[i].abbr, sizeof z->types[i].abbr, "%.*s",
                         (int)strnlen(chars + ai, charcnt - ai), chars + ai);
        }
        z->ntrans = timecnt;
        z->ntypes = typecnt;
        if (version >= '2') {
            const unsigned char *f = d + body;
            if ((size_t)(f - b) < n && *f == '\n') {
                const unsigned char *e = memchr(f + 1, '\n', n - (size_t)(f + 1 - b));
                if (e && e > f + 1) {
                    char buf[128];
                    snprintf(buf, sizeof buf, "%.*s", (int)(e - f - 1), f + 1);
                    parse_posix(buf, &z->footer);
                }
            }
        }
        return 0;
    }
    return -1;
}

/* Fixed offsets: "UTC", "Z", "GMT", "+01:00", "-0500", "UTC+01:00", "GMT-3", "UT+5". */
static int fixed_offset(const char *s, size_t n, int32_t *off) {
    size_t i = 0;
    if (n >= 3 && (!strncmp(s, "UTC", 3) || !strncmp(s, "GMT", 3)))
        i = 3;
    else if (n >= 2 && !strncmp(s, "UT", 2))
        i = 2;
    else if (n == 1 && s[0] == 'Z') {
        *off = 0;
        return 0;
    }
    if (i == n) {
        if (i == 0)
            return -1;
        *off = 0;
        return 0;
    }
    if (s[i] != '+' && s[i] != '-')
        return -1;
    int sign = s[i] == '-' ? -1 : 1;
    i++;
    int h = 0, m = 0, sec = 0, digits = 0;
    while (i < n && isdigit((unsigned char)s[i]) && digits < 2)
        h = h * 10 + (s[i++] - '0'), digits++;
    if (digits == 0)
        return -1;
    if (i < n && s[i] == ':')
        i++;
    digits = 0;
    while (i < n && isdigit((unsigned char)s[i]) && digits < 2)
        m = m * 10 + (s[i++] - '0'), digits++;
    if (i < n && s[i] == ':')
        i++;
    digits = 0;
    while (i < n && isdigit((unsigned char)s[i]) && digits < 2)
        sec = sec * 10 + (s[i++] - '0'), digits++;
    if (i != n || h > 18 || m > 59 || sec > 59)
        return -1;
    *off = sign * (h * 3600 + m * 60 + sec);
    return 0;
}

static struct sql_tz *load(const char *name, size_t n) {
    struct sql_tz *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    snprintf(z->name, sizeof z->name, "%.*s", (int)n, name);
    int32_t off;
    if (fixed_offset(name, n, &off) == 0) {
        z->types = calloc(1, sizeof *z->types);
        if (!z->types) {
            free(z);
            return NULL;
        }
        z->types[0].off = off;
        if (off == 0)
            snprintf(z->types[0].abbr, sizeof z->types[0].abbr, "%s",
                     n >= 3 && !strncmp(name, "GMT", 3) ? "GMT" : "UTC");
        else
            snprintf(z->types[0].abbr, sizeof z->types[0].abbr, "%c%02d:%02d",
                     off < 0 ? '-' : '+', abs(off) / 3600, abs(off) % 3600 / 60);
        z->ntypes = 1;
        return z;
    }
    /* region ids: letters, digits, '/', '_', '-', '+'; no "..", no leading '/' */
    if (n == 0 || n > 100 || name[0] == '/')
        goto fail;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '.' || (i + 1 < n && c == '/' && name[i + 1] == '/'))
            goto fail;
        if (!(isalnum((unsigned char)c) || c == '/' || c == '_' || c == '-' || c == '+'))
            goto fail;
    }
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%.*s", dir && *dir ? dir : "/usr/share/zoneinfo", (int)n,
             name);
    FILE *f = fopen(path, "rb");
    if (!f)
        goto fail;
    unsigned char *buf = malloc(1 << 20);
    size_t len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    int rc = buf ? load_tzif(z, buf, len) : -1;
    free(buf);
    if (rc == 0)
        return z;
fail:
    free(z->trans);
    free(z->idx);
    free(z->types);
    free(z);
    return NULL;
}

const sql_tz *sql__tz_get(const char *name, size_t n) {
    pthread_mutex_lock(&zones_mu);
    struct sql_tz *z;
    for (z = zones; z; z = z->next)
        if (strlen(z->name) == n && memcmp(z->name, name, n) == 0)
            break;
    if (!z) {
        z = load(name, n);
        if (z) {
            z->next = zones;
            zones = z;
        }
    }
    pthread_mutex_unlock(&zones_mu);
    return z;
}

const char *sql__tz_name(const sql_tz *z) { return z->name; }

static const ttype *type_at(const sql_tz *z, int64_t utc) {
    if (z->ntrans == 0)
        return z->footer.valid ? posix_at(&z->footer, utc) : &z->types[0];
    if (utc < z->trans[0]) {
        for (uint32_t i = 0; i < z->ntypes; i++) /* the first standard-time type */
            if (!z->types[i].isdst)
                return &z->types[i];
        return &z->types[0];
    }
    if (utc >= z->trans[z->ntrans - 1] && z->footer.valid)
        return posix_at(&z->footer, utc);
    uint32_t lo = 0, hi = z->ntrans; /* last transition <= utc */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (z->trans[mid] <= utc)
            lo = mid;
        else
            hi = mid;
    }
    return &z->types[z->idx[lo]];
}

int sql__tz_at(const sql_tz *z, int64_t utc_s, int32_t *offset_s, const char **abbr,
               int *isdst) {
    const ttype *t = type_at(z, utc_s);
    if (offset_s)
        *offset_s = t->off;
    if (abbr)
        *abbr = t->abbr;
    if (isdst)
        *isdst = t->isdst;
    return 0;
}

int64_t sql__tz_local_to_utc(const sql_tz *z, int64_t local_s) {
    /* try the offsets in force a day either side; prefer the earlier instant (java.time) */
    int32_t o1, o2;
    sql__tz_at(z, local_s - 86400, &o1, NULL, NULL);
    sql__tz_at(z, local_s + 86400, &o2, NULL, NULL);
    int32_t cand[2] = {o1 > o2 ? o1 : o2, o1 > o2 ? o2 : o1};
    for (int i = 0; i < 2; i++) {
        int32_t off;
        sql__tz_at(z, local_s - cand[i], &off, NULL, NULL);
        if (off == cand[i])
            return local_s - cand[i];
    }
    /* a gap (spring forward): shift forward by the gap, using the offset before it */
    return local_s - o1;
}

/* }====== */
