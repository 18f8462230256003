/*
 * func_time.c -- parse_time() and time_to_epoch().
 *
 * AWS's engine runs on the JVM and exposes two different Java date libraries: parse_time()
 * formats with a Joda-Time DateTimeFormat pattern, time_to_epoch() parses with a JDK 11
 * java.time DateTimeFormatter pattern. Both are reimplemented here over a proleptic Gregorian
 * calendar and tz.c's zones, for the pattern letters those libraries document (sql/README.md
 * lists them). Unknown letters, unknown zones and text that does not match give Undefined,
 * as AWS does for invalid arguments.
 *
 * Zone names in output (Joda 'z') are the tz abbreviations ("CST"); long names ('zzzz') are
 * not in tzdata, so they print as the zone id. In input (java 'z'), common abbreviations map
 * to a region (PST -> America/Los_Angeles) and region ids are accepted as they are.
 */
#include "sql_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const month_long[] = {"January", "February", "March",     "April",
                                         "May",     "June",     "July",      "August",
                                         "September", "October", "November", "December"};
static const char *const day_long[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};

typedef struct civil {
    int64_t year;
    int month, day, hour, min, sec, ms;
    int dow; /* 1 = Monday .. 7 = Sunday */
    int doy; /* 1.. */
} civil;

static int64_t floordiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static void to_civil(int64_t local_ms, civil *c) {
    int64_t days = floordiv(local_ms, 86400000);
    int64_t msday = local_ms - days * 86400000;
    int64_t z = days + 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    c->day = (int)(doy - (153 * mp + 2) / 5 + 1);
    c->month = (int)(mp < 10 ? mp + 3 : mp - 9);
    c->year = yoe + era * 400 + (c->month <= 2);
    c->hour = (int)(msday / 3600000);
    c->min = (int)(msday / 60000 % 60);
    c->sec = (int)(msday / 1000 % 60);
    c->ms = (int)(msday % 1000);
    c->dow = (int)(days + 3 - floordiv(days + 3, 7) * 7) + 1; /* 1970-01-01: a Thursday */
    c->doy = (int)(days - sql__days_from_civil(c->year, 1, 1) + 1);
}

static int64_t p_of(int64_t y) { return (y + floordiv(y, 4) - floordiv(y, 100) + floordiv(y, 400)) % 7; }
static int weeks_in(int64_t y) { return (p_of(y) + 7) % 7 == 4 || (p_of(y - 1) + 7) % 7 == 3 ? 53 : 52; }

/* ISO week-based year and week of the date. */
static void iso_week(const civil *c, int64_t *wyear, int *week) {
    int64_t y = c->year;
    int wk = (c->doy - c->dow + 10) / 7;
    if (wk < 1) {
        y--;
        wk = weeks_in(y);
    } else if (wk > weeks_in(y)) {
        y++;
        wk = 1;
    }
    *wyear = y;
    *week = wk;
}

/* {====== parse_time: Joda-Time DateTimeFormat */

static void put_num(sql_buf *b, int64_t v, int width) {
    char tmp[32];
    int neg = v < 0;
    uint64_t u = neg ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg)
        sql__buf_putc(b, '-');
    for (int i = n; i < width; i++)
        sql__buf_putc(b, '0');
    while (n)
        sql__buf_putc(b, tmp[--n]);
}

static void put_offset(sql_buf *b, int32_t off, int colon) {
    sql__buf_putc(b, off < 0 ? '-' : '+');
    if (off < 0)
        off = -off;
    put_num(b, off / 3600, 2);
    if (colon)
        sql__buf_putc(b, ':');
    put_num(b, off / 60 % 60, 2);
}

/* Formats instant ms in zone z with a Joda pattern. Returns 0, or -1 for a bad pattern. */
static int joda_format(sql_buf *b, const char *pat, size_t n, int64_t ms, const sql_tz *z) {
    int32_t off;
    const char *abbr;
    sql__tz_at(z, floordiv(ms, 1000), &off, &abbr, NULL);
    civil c;
    to_civil(ms + (int64_t)off * 1000, &c);
    for (size_t i = 0; i < n;) {
        char ch = pat[i];
        if (ch == '\'') {
            size_t j = i + 1;
            if (j < n && pat[j] == '\'') { /* '' is a quote */
                sql__buf_putc(b, '\'');
                i += 2;
                continue;
            }
            while (j < n) {
                if (pat[j] == '\'') {
                    if (j + 1 < n && pat[j + 1] == '\'') {
                        sql__buf_putc(b, '\'');
                        j += 2;
                        continue;
                    }
                    break;
                }
                sql__buf_putc(b, pat[j++]);
            }
            if (j >= n)
                return -1;
            i = j + 1;
            continue;
        }
        if (!isalpha((unsigned char)ch)) {
            sql__buf_putc(b, ch);
            i++;
            continue;
        }
        int cnt = 0;
        while (i < n && pat[i] == ch)
            cnt++, i++;
        int64_t yoe = c.year > 0 ? c.year : 1 - c.year;
        switch (ch) {
        case 'G': sql__buf_put(b, c.year > 0 ? "AD" : "BC", 2); break;
        case 'C': put_num(b, yoe / 100, cnt); break;
        case 'Y':
        case 'y':
        case 'x': {
            int64_t y = ch == 'Y' ? yoe : c.year;
            if (ch == 'x') {
                int w;
                iso_week(&c, &y, &w);
            }
            if (cnt == 2)
                put_num(b, ((y % 100) + 100) % 100, 2);
            else
                put_num(b, y, cnt);
            break;
        }
        case 'w': {
            int64_t wy;
            int w;
            iso_week(&c, &wy, &w);
            put_num(b, w, cnt);
            break;
        }
        case 'e': put_num(b, c.dow, cnt); break;
        case 'E':
            if (cnt >= 4)
                sql__buf_put(b, day_long[c.dow - 1], strlen(day_long[c.dow - 1]));
            else
                sql__buf_put(b, day_long[c.dow - 1], 3);
            break;
        case 'D': put_num(b, c.doy, cnt); break;
        case 'M':
            if (cnt >= 4)
                sql__buf_put(b, month_long[c.month - 1], strlen(month_long[c.month - 1]));
            else if (cnt == 3)
                sql__buf_put(b, month_long[c.month - 1], 3);
            else
                put_num(b, c.month, cnt);
            break;
        case 'd': put_num(b, c.day, cnt); break;
        case 'a': sql__buf_put(b, c.hour < 12 ? "AM" : "PM", 2); break;
        case 'K': put_num(b, c.hour % 12, cnt); break;
        case 'h': put_num(b, c.hour % 12 ? c.hour % 12 : 12, cnt); break;
        case 'H': put_num(b, c.hour, cnt); break;
        case 'k': put_num(b, c.hour ? c.hour : 24, cnt); break;
        case 'm': put_num(b, c.min, cnt); break;
        case 's': put_num(b, c.sec, cnt); break;
        case 'S': { /* fraction of second, truncated to cnt digits */
            char f[3] = {(char)('0' + c.ms / 100), (char)('0' + c.ms / 10 % 10),
                         (char)('0' + c.ms % 10)};
            for (int k = 0; k < cnt; k++)
                sql__buf_putc(b, k < 3 ? f[k] : '0');
            break;
        }
        case 'z':
            if (cnt >= 4)
                sql__buf_put(b, sql__tz_name(z), strlen(sql__tz_name(z)));
            else
                sql__buf_put(b, abbr, strlen(abbr));
            break;
        case 'Z':
            if (cnt >= 3)
                sql__buf_put(b, sql__tz_name(z), strlen(sql__tz_name(z)));
            else
                put_offset(b, off, cnt == 2);
            break;
        default:
            return -1;
        }
    }
    return 0;
}

static int str_arg(sql_ctx *ctx, const sql_value *v, const char **s, size_t *n) {
    if (v->t != SQL_T_STR)
        return -1;
    *s = v->u.s;
    *n = v->n;
    return 0;
}

/* parse_time(pattern, ms[, zone]) */
static int fn_parse_time(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = SQL_UNDEF;
    const char *pat, *zn = "UTC";
    size_t pn, zl = 3;
    if (str_arg(ctx, &argv[0], &pat, &pn))
        return 0;
    sql_value t = sql__to_num(ctx, &argv[1]);
    int64_t ms;
    if (!sql__is_num(&t) || sql__num_to_i64(&t, SQL_ROUND_FLOOR, &ms))
        return 0;
    if (argc > 2 && str_arg(ctx, &argv[2], &zn, &zl))
        return 0;
    const sql_tz *z = sql__tz_get(zn, zl);
    if (!z)
        return 0;
    sql_buf b;
    sql__buf_init(&b);
    if (joda_format(&b, pat, pn, ms, z) == 0 && !b.oom) {
        char *s = sql__arena_strdup(&ctx->arena, b.p ? b.p : "", b.len);
        if (s)
            *out = sql__str(s, (uint32_t)b.len);
        else
            sql_ctx_error(ctx, SQL_E_NOMEM, "out of memory");
    }
    sql__buf_free(&b);
    return 0;
}

/* }====== */

/* {====== time_to_epoch: java.time DateTimeFormatter */

typedef struct parsed {
    int64_t year;
    int has_year, month, day, doy, hour, hour12, pm, has_ampm, min, sec;
    int64_t nanos;
    int has_offset;
    int32_t offset;
    const sql_tz *zone;
} parsed;

static int match_word(const char **s, const char *end, const char *const *words, int nwords,
                      int prefix3) {
    for (int i = 0; i < nwords; i++) {
        size_t wl = prefix3 ? 3 : strlen(words[i]);
        if ((size_t)(end - *s) >= wl && strncasecmp(*s, words[i], wl) == 0) {
            *s += wl;
            return i;
        }
    }
    return -1;
}

static int read_int(const char **s, const char *end, int min, int max, int64_t *out) {
    const char *p = *s;
    int neg = 0;
    if (p < end && (*p == '-' || *p == '+') && max > 4)
        neg = *p++ == '-';
    int64_t v = 0;
    int n = 0;
    while (p < end && n < max && isdigit((unsigned char)*p))
        v = v * 10 + (*p++ - '0'), n++;
    if (n < min)
        return -1;
    *s = p;
    *out = neg ? -v : v;
    return 0;
}

/* Offsets: "Z", "+01", "+0100", "+01:00", "+01:00:00". */
static int read_offset(const char **s, const char *end, int32_t *off, int allow_z) {
    const char *p = *s;
    if (allow_z && p < end && *p == 'Z') {
        *off = 0;
        *s = p + 1;
        return 0;
    }
    if (p >= end || (*p != '+' && *p != '-'))
        return -1;
    int sign = *p++ == '-' ? -1 : 1;
    int64_t h, m = 0, sec = 0;
    if (read_int(&p, end, 1, 2, &h))
        return -1;
    if (p < end && *p == ':')
        p++;
    if (p < end && isdigit((unsigned char)*p) && read_int(&p, end, 2, 2, &m))
        return -1;
    if (p < end && *p == ':')
        p++;
    if (p < end && isdigit((unsigned char)*p) && read_int(&p, end, 2, 2, &sec))
        return -1;
    *off = (int32_t)(sign * (h * 3600 + m * 60 + sec));
    *s = p;
    return 0;
}

/* A zone id or name at *s: the longest run of id characters, or a known abbreviation. */
static const sql_tz *read_zone(const char **s, const char *end) {
    static const char *const abbr[][2] = {
        {"PST", "America/Los_Angeles"}, {"PDT", "America/Los_Angeles"},
        {"MST", "America/Denver"},      {"MDT", "America/Denver"},
        {"CST", "America/Chicago"},     {"CDT", "America/Chicago"},
        {"EST", "America/New_York"},    {"EDT", "America/New_York"},
        {"AKST", "America/Anchorage"},  {"AKDT", "America/Anchorage"},
        {"HST", "Pacific/Honolulu"},    {"CET", "Europe/Paris"},
        {"CEST", "Europe/Paris"},       {"EET", "Europe/Athens"},
        {"EEST", "Europe/Athens"},      {"WET", "Europe/Lisbon"},
        {"WEST", "Europe/Lisbon"},      {"BST", "Europe/London"},
        {"JST", "Asia/Tokyo"},          {"IST", "Asia/Kolkata"},
        {"AEST", "Australia/Sydney"},   {"AEDT", "Australia/Sydney"},
    };
    const char *p = *s;
    while (p < end && (isalnum((unsigned char)*p) || *p == '/' || *p == '_' || *p == '+' ||
                       *p == '-' || *p == ':'))
        p++;
    size_t n = (size_t)(p - *s);
    for (size_t i = 0; i < sizeof abbr / sizeof abbr[0]; i++) {
        if (strlen(abbr[i][0]) == n && strncmp(*s, abbr[i][0], n) == 0) {
            *s = p;
            return sql__tz_get(abbr[i][1], strlen(abbr[i][1]));
        }
    }
    const sql_tz *z = sql__tz_get(*s, n);
    if (z)
        *s = p;
    return z;
}

static int java_parse(const char *pat, size_t pn, const char *s, size_t sn, parsed *r) {
    const char *p = s, *end = s + sn;
    for (size_t i = 0; i < pn;) {
        char ch = pat[i];
        if (ch == '\'') {
            size_t j = i + 1;
            if (j < pn && pat[j] == '\'') {
                if (p >= end || *p != '\'')
                    return -1;
                p++;
                i += 2;
                continue;
            }
            while (j < pn && pat[j] != '\'') {
                if (p >= end || *p != pat[j])
                    return -1;
                p++, j++;
            }
            if (j >= pn)
                return -1;
            i = j + 1;
            continue;
        }
        if (ch == '[' || ch == ']') { /* optional sections are parsed as if present */
            i++;
            continue;
        }
        if (!isalpha((unsigned char)ch)) {
            if (p >= end || *p != ch)
                return -1;
            p++, i++;
            continue;
        }
        int cnt = 0;
        while (i < pn && pat[i] == ch)
            cnt++, i++;
        int64_t v;
        switch (ch) {
        case 'u':
        case 'y':
            if (cnt == 2) {
                if (read_int(&p, end, 2, 2, &v))
                    return -1;
                v += 2000;
            } else if (read_int(&p, end, cnt < 4 ? 1 : cnt, 10, &v)) {
                return -1;
            }
            r->year = v;
            r->has_year = 1;
            break;
        case 'M':
        case 'L':
            if (cnt >= 3) {
                int m = match_word(&p, end, month_long, 12, cnt == 3);
                if (m < 0)
                    return -1;
                r->month = m + 1;
            } else {
                if (read_int(&p, end, cnt, 2, &v) || v < 1 || v > 12)
                    return -1;
                r->month = (int)v;
            }
            break;
        case 'd':
            if (read_int(&p, end, cnt, 2, &v) || v < 1 || v > 31)
                return -1;
            r->day = (int)v;
            break;
        case 'D':
            if (read_int(&p, end, cnt, 3, &v) || v < 1 || v > 366)
                return -1;
            r->doy = (int)v;
            break;
        case 'E':
            if (match_word(&p, end, day_long, 7, cnt <= 3) < 0)
                return -1;
            break;
        case 'a': {
            static const char *const ampm[] = {"AM", "PM"};
            int k = match_word(&p, end, ampm, 2, 0);
            if (k < 0)
                return -1;
            r->pm = k;
            r->has_ampm = 1;
            break;
        }
        case 'H':
        case 'k':
        case 'h':
        case 'K':
            if (read_int(&p, end, cnt, 2, &v) || v > 24)
                return -1;
            r->hour = (int)v;
            if (ch == 'k' && v == 24)
                r->hour = 0;
            if (ch == 'h' || ch == 'K')
                r->hour12 = 1;
            if (ch == 'h' && v == 12)
                r->hour = 0;
            break;
        case 'm':
            if (read_int(&p, end, cnt, 2, &v) || v > 59)
                return -1;
            r->min = (int)v;
            break;
        case 's':
            if (read_int(&p, end, cnt, 2, &v) || v > 59)
                return -1;
            r->sec = (int)v;
            break;
        case 'S': {
            const char *q = p;
            int64_t nanos = 0;
            int k = 0;
            while (q < end && k < cnt && isdigit((unsigned char)*q))
                nanos = nanos * 10 + (*q++ - '0'), k++;
            if (k != cnt || cnt > 9)
                return -1;
            for (; k < 9; k++)
                nanos *= 10;
            r->nanos = nanos;
            p = q;
            break;
        }
        case 'n':
            if (read_int(&p, end, 1, 9, &v))
                return -1;
            r->nanos = v;
            break;
        case 'V':
        case 'z': {
            const sql_tz *z = read_zone(&p, end);
            if (!z)
                return -1;
            r->zone = z;
            break;
        }
        case 'O':
            if (end - p >= 3 && !strncmp(p, "GMT", 3)) {
                p += 3;
                r->offset = 0;
                if (p < end && (*p == '+' || *p == '-') && read_offset(&p, end, &r->offset, 0))
                    return -1;
                r->has_offset = 1;
                break;
            }
            return -1;
        case 'Z':
        case 'X':
        case 'x':
            if (read_offset(&p, end, &r->offset, ch != 'x'))
                return -1;
            r->has_offset = 1;
            break;
        default:
            return -1;
        }
    }
    return p == end ? 0 : -1;
}

/* time_to_epoch(string, pattern) -> Int ms */
static int fn_time_to_epoch(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = SQL_UNDEF;
    const char *s, *pat;
    size_t sn, pn;
    if (str_arg(ctx, &argv[0], &s, &sn) || str_arg(ctx, &argv[1], &pat, &pn))
        return 0;
    parsed r;
    memset(&r, 0, sizeof r);
    if (java_parse(pat, pn, s, sn, &r) != 0 || !r.has_year)
        return 0;
    if (r.has_ampm && r.pm && r.hour12)
        r.hour += 12;
    int64_t days;
    if (r.month) {
        if (!r.day)
            return 0;
        static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        if (r.day > mdays[r.month - 1])
            return 0;
        days = sql__days_from_civil(r.year, r.month, r.day);
        if (r.month == 2 && r.day == 29 && sql__days_from_civil(r.year, 3, 1) - days != 1)
            return 0;
    } else if (r.doy) {
        days = sql__days_from_civil(r.year, 1, 1) + r.doy - 1;
    } else {
        return 0; /* java.time needs a date to make an instant */
    }
    int64_t local = days * 86400 + r.hour * 3600 + r.min * 60 + r.sec, utc;
    if (r.has_offset)
        utc = local - r.offset;
    else if (r.zone)
        utc = sql__tz_local_to_utc(r.zone, local);
    else
        utc = local; /* no zone in the pattern: UTC */
    *out = sql__int(utc * 1000 + r.nanos / 1000000);
    return 0;
}

/* }====== */

const sql_func sql__func_time[] = {
    {"parse_time", 2, 3, SQL_FN_DETERMINISTIC | SQL_FN_V2016, fn_parse_time},
    {"time_to_epoch", 2, 2, SQL_FN_DETERMINISTIC | SQL_FN_V2016, fn_time_to_epoch},
    {0},
};
