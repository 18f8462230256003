/*
 * test_server.c -- listen addresses and the secure default (engine/api/server.c): IPv4,
 * IPv6 in brackets, localhost; with no credential and no token, only loopback is allowed,
 * unless SLUICE_INSECURE_NO_AUTH.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>

#include "api_test.h"

Test(server, listen_addresses) {
    static const struct {
        const char *addr;
        int ok, family, loopback;
    } cases[] = {
        {"127.0.0.1:8088", 1, AF_INET, 1},
        {"127.1.2.3:1", 1, AF_INET, 1},
        {"localhost:8088", 1, AF_INET, 1},
        {"0.0.0.0:8088", 1, AF_INET, 0},
        {":8088", 1, AF_INET, 0},
        {"192.0.2.7:65535", 1, AF_INET, 0},
        {"[::1]:8088", 1, AF_INET6, 1},
        {"[::]:8088", 1, AF_INET6, 0},
        {"[::ffff:127.0.0.1]:8088", 1, AF_INET6, 1},
        {"[::ffff:192.0.2.7]:8088", 1, AF_INET6, 0},
        {"[2001:db8::1]:8088", 1, AF_INET6, 0},
        {"::1:8088", 0, 0, 0},
        {"[::1]", 0, 0, 0},
        {"127.0.0.1", 0, 0, 0},
        {"127.0.0.1:0", 0, 0, 0},
        {"127.0.0.1:65536", 0, 0, 0},
        {"127.0.0.1:80x", 0, 0, 0},
        {"127.0.0.1:", 0, 0, 0},
        {"example.com:8088", 0, 0, 0},
        {"[fe80::1%eth0]:8088", 0, 0, 0},
        {"", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char err[300] = "";
        int rc = eng_api_parse_addr(cases[i].addr, &ss, &len, err, sizeof err);
        cr_expect_eq(rc == 0, cases[i].ok, "%s: %s", cases[i].addr, err);
        if (rc)
            continue;
        cr_expect_eq(ss.ss_family, cases[i].family, "%s", cases[i].addr);
        cr_expect_eq(eng_api_addr_is_loopback(&ss), cases[i].loopback, "%s", cases[i].addr);
    }
}

Test(server, without_credentials_only_loopback) {
    eng_config cfg;
    eng_config_defaults(&cfg);
    eng_log_set_level(ENG_LOG_ERROR);
    char err[1024] = "";
    static const char *const fine[] = {"127.0.0.1:8088", "[::1]:8088", "localhost:1"};
    static const char *const exposed[] = {"0.0.0.0:8088", "[::]:8088", "192.0.2.7:8088"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(cfg.http_addr, sizeof cfg.http_addr, "%s", fine[i]);
        cr_expect_eq(eng_api_check_exposure(&cfg, err, sizeof err), 0, "%s", fine[i]);
        snprintf(cfg.http_addr, sizeof cfg.http_addr, "%s", exposed[i]);
        cr_expect_eq(eng_api_check_exposure(&cfg, err, sizeof err), -1, "%s", exposed[i]);
        cr_expect(strstr(err, "SLUICE_ACCESS_KEY_ID") && strstr(err, "aws configure") &&
                      strstr(err, "SLUICE_INSECURE_NO_AUTH=1"),
                  "the message says how: %s", err);
    }
    cfg.insecure_no_auth = 1;
    cr_expect_eq(eng_api_check_exposure(&cfg, err, sizeof err), 0);
    cfg.insecure_no_auth = 0;
    cfg.ntokens = 1;
    cr_expect_eq(eng_api_check_exposure(&cfg, err, sizeof err), 0, "a token is enough");
    cfg.ntokens = 0;
    cfg.ncredentials = 1;
    cr_expect_eq(eng_api_check_exposure(&cfg, err, sizeof err), 0, "a credential is enough");
    snprintf(cfg.http_addr, sizeof cfg.http_addr, "nonsense");
    cr_expect_eq(eng_api_check_exposure(&cfg, err, sizeof err), -1);
}
