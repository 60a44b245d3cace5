#include "config.h"
#include "log.h"
#include "real.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ut_config ut_cfg = {
    .fd_base = 0,
    .max_fds = 1 << 20,
    .log_level = UT_LOG_WARN,
    .children = UT_CHILDREN_INHERIT,
};

int ut_virtual_fds;

static int errors;

static void bad(const char *key, const char *value, const char *expected)
{
    ut_log(UT_LOG_ERROR, "configuration: %s='%s' is invalid: expected %s", key, value, expected);
    errors++;
}

static int parse_ipv4(const char *s, uint32_t *out, const char **end)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned long octet = strtoul(s, (char **)&s, 10);
        if (octet > 255) return -1;
        v = v << 8 | (uint32_t)octet;
        if (i < 3 && *s++ != '.') return -1;
    }
    *out = v;
    *end = s;
    return 0;
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static void copy_str(char *dst, size_t cap, const char *key, const char *v)
{
    if (strlen(v) >= cap) {
        bad(key, v, "a shorter value");
        return;
    }
    strcpy(dst, v);
}

/* Applies one KEY=VALUE. Keys are the environment names (USERTCP_ prefix optional in the file). */
static void apply(const char *key, const char *v)
{
    if (strncmp(key, "USERTCP_", 8) == 0) key += 8;
    long n;
    if (!strcmp(key, "IP")) {
        const char *end;
        uint32_t ip;
        long len = 32;
        if (parse_ipv4(v, &ip, &end) || (*end == '/' && parse_int(end + 1, 0, 32, &len)) || (*end && *end != '/')) {
            bad("USERTCP_IP", v, "an IPv4 address with an optional prefix length, e.g. 198.18.0.2/24");
            return;
        }
        ut_cfg.ip = ip;
        ut_cfg.prefix_len = (int32_t)len;
        ut_cfg.offload = 1;
    } else if (!strcmp(key, "IP6")) {
        char text[64];
        const char *slash = strchr(v, '/');
        size_t alen = slash ? (size_t)(slash - v) : strlen(v);
        long len = 64;
        struct in6_addr a;
        int ok = alen < sizeof text && (!slash || !parse_int(slash + 1, 1, 128, &len));
        if (ok) {
            memcpy(text, v, alen);
            text[alen] = 0;
            ok = inet_pton(AF_INET6, text, &a) == 1 && !IN6_IS_ADDR_UNSPECIFIED(&a) && !IN6_IS_ADDR_MULTICAST(&a) &&
                 !IN6_IS_ADDR_LOOPBACK(&a) && !IN6_IS_ADDR_V4MAPPED(&a);
        }
        if (!ok) {
            bad("USERTCP_IP6", v, "a unicast IPv6 address with an optional prefix length, e.g. 2001:db8::2/64");
            return;
        }
        memcpy(ut_cfg.ip6, &a, 16);
        ut_cfg.prefix6 = (int32_t)len;
    } else if (!strcmp(key, "GATEWAY")) {
        const char *end;
        if (parse_ipv4(v, &ut_cfg.gateway, &end) || *end) bad("USERTCP_GATEWAY", v, "an IPv4 address");
    } else if (!strcmp(key, "FD_BASE")) {
        if (parse_int(v, 0, 1 << 24, &n)) bad("USERTCP_FD_BASE", v, "an integer from 0 to 16777216");
        else ut_cfg.fd_base = (int32_t)n;
    } else if (!strcmp(key, "VIRTUAL_FDS")) {
        if (parse_int(v, 0, 1, &n)) bad("USERTCP_VIRTUAL_FDS", v, "0 or 1");
        else ut_virtual_fds = (int)n;
    } else if (!strcmp(key, "MAX_SOCKETS")) {
        if (parse_int(v, 1, 1 << 26, &n)) bad("USERTCP_MAX_SOCKETS", v, "an integer from 1 to 67108864");
        else ut_cfg.max_fds = (int32_t)n;
    } else if (!strcmp(key, "LOG")) {
        static const char *const names[] = { "error", "warn", "info", "debug" };
        int found = -1;
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, names[i])) found = i;
        if (found < 0) bad("USERTCP_LOG", v, "one of error, warn, info, debug");
        else ut_cfg.log_level = found;
    } else if (!strcmp(key, "CHILDREN")) {
        if (!strcmp(v, "inherit")) ut_cfg.children = UT_CHILDREN_INHERIT;
        else if (!strcmp(v, "kernel")) ut_cfg.children = UT_CHILDREN_KERNEL;
        else bad("USERTCP_CHILDREN", v, "inherit or kernel");
    } else if (!strcmp(key, "STATS")) {
        if (parse_int(v, 0, 1, &n)) bad("USERTCP_STATS", v, "0 or 1");
        else ut_cfg.stats = (int32_t)n;
    } else if (!strcmp(key, "DEV")) {
        copy_str(ut_cfg.dev, sizeof ut_cfg.dev, "USERTCP_DEV", v);
    } else if (!strcmp(key, "DPDK_ARGS")) {
        copy_str(ut_cfg.dpdk_args, sizeof ut_cfg.dpdk_args, "USERTCP_DPDK_ARGS", v);
    } else if (!strcmp(key, "MAC")) {
        copy_str(ut_cfg.mac, sizeof ut_cfg.mac, "USERTCP_MAC", v);
    } else if (!strcmp(key, "LOG_FILE")) {
        copy_str(ut_cfg.log_file, sizeof ut_cfg.log_file, "USERTCP_LOG_FILE", v);
    } else if (!strcmp(key, "CONFIG")) {
        /* handled before */
    } else {
        ut_log(UT_LOG_ERROR, "configuration: unknown key '%s'", key);
        errors++;
    }
}

static void load_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        ut_log(UT_LOG_ERROR, "configuration: cannot open USERTCP_CONFIG='%s': %s", path, strerror(errno));
        errors++;
        return;
    }
    char line[2048];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ')) s[--len] = 0;
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            ut_log(UT_LOG_ERROR, "configuration: %s:%d: expected KEY=VALUE", path, lineno);
            errors++;
            continue;
        }
        *eq = 0;
        char *k = s, *kend = eq;
        while (kend > k && (kend[-1] == ' ' || kend[-1] == '\t')) *--kend = 0;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        /* The environment overrides the file. */
        char envname[64];
        snprintf(envname, sizeof envname, "%s%s", strncmp(k, "USERTCP_", 8) ? "USERTCP_" : "", k);
        if (!getenv(envname)) apply(k, v);
    }
    fclose(f);
}

int ut_config_load(void)
{
    errors = 0;
    const char *file = getenv("USERTCP_CONFIG");
    if (file && *file) load_file(file);
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "USERTCP_", 8) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        char key[64];
        size_t klen = (size_t)(eq - *e);
        if (klen >= sizeof key) {
            ut_log(UT_LOG_ERROR, "configuration: unknown key '%.*s'", (int)klen, *e);
            errors++;
            continue;
        }
        memcpy(key, *e, klen);
        key[klen] = 0;
        apply(key, eq + 1);
    }
    if ((long)ut_cfg.fd_base + ut_cfg.max_fds > (1L << 30)) {
        ut_log(UT_LOG_ERROR, "configuration: USERTCP_FD_BASE + USERTCP_MAX_SOCKETS must stay below 2^30");
        errors++;
    }
    ut_log_level = ut_cfg.log_level;
    if (ut_cfg.log_file[0]) {
        int fd = open(ut_cfg.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            ut_log(UT_LOG_ERROR, "configuration: cannot open USERTCP_LOG_FILE='%s': %s", ut_cfg.log_file, strerror(errno));
            errors++;
        } else {
            ut_log_fd = fd;
        }
    }
    return errors ? -1 : 0;
}
