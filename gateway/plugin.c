/* The gateway plugin loader (gateway/plugin.h): dlopen, the entry point, ABI checks, and the
 * registration of each plugin's types with the host's registry. */
#include "gateway/plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "gateway/gateway.h"

#define PLUGINS_MAX 32
#define PLUGIN_TYPES_MAX 32

/* What was loaded, for the lifetime of the process (plugins are never unloaded). */
static struct loaded {
    void *handle;
    char *path;
} loaded[PLUGINS_MAX];
static int nloaded;

/* Which file registered which type, to name both sides of a clash. */
static struct owner {
    const zd_gateway_type *type;
    int plugin; /* index into loaded[] */
} owners[PLUGIN_TYPES_MAX * 2];
static int nowners;

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

const char *zd_gateway_plugin_of(const char *name)
{
    for (int i = 0; i < nowners; i++) {
        if (strcmp(owners[i].type->name, name) == 0)
            return loaded[owners[i].plugin].path;
    }
    return NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_plugin_name(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && name[0] != '.' && strcmp(name + n - 3, ".so") == 0;
}

/* Checks every type of one plugin before registering any, so that a refused file leaves
 * nothing behind. */
static int check_types(const char *path, const zd_gateway_type *const *types, int *ntypes,
                       char *err, size_t errlen)
{
    int n = 0;
    for (; types[n]; n++) {
        const zd_gateway_type *t = types[n];
        if (n == PLUGIN_TYPES_MAX)
            return fail(err, errlen, -EINVAL, "plugin %s: more than %d gateway types", path,
                        PLUGIN_TYPES_MAX);
        if (t->abi_version != ZD_GATEWAY_ABI_VERSION)
            return fail(err, errlen, -EINVAL,
                        "plugin %s: gateway type \"%.64s\" was built for gateway ABI version %u, "
                        "zhidad has version %d: rebuild the plugin against this zhidad's "
                        "include/zhida/gateway.h",
                        path, t->name ? t->name : "", t->abi_version, ZD_GATEWAY_ABI_VERSION);
        if (!t->name || !t->name[0] || !t->check || !t->create || !t->max_batch || !t->send ||
            !t->destroy)
            return fail(err, errlen, -EINVAL,
                        "plugin %s: gateway type \"%.64s\" lacks its name or a required callback",
                        path, t->name ? t->name : "");
        if (zd_gateway_type_builtin(t->name))
            return fail(err, errlen, -EEXIST,
                        "plugin %s: gateway type \"%.64s\" clashes with the built-in type of that "
                        "name",
                        path, t->name);
        const char *other = zd_gateway_plugin_of(t->name);
        if (other || zd_gateway_type_find(t->name))
            return fail(err, errlen, -EEXIST,
                        "plugin %s: gateway type \"%.64s\" clashes with the type of that name of "
                        "plugin %s",
                        path, t->name, other ? other : "(registered by the host)");
        for (int j = 0; j < n; j++) {
            if (strcmp(types[j]->name, t->name) == 0)
                return fail(err, errlen, -EEXIST,
                            "plugin %s: gateway type \"%.64s\" is listed twice", path, t->name);
        }
    }
    *ntypes = n;
    return 0;
}

static int load_one(const char *path, char *err, size_t errlen)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return fail(err, errlen, -ENOEXEC, "plugin %s: cannot load it: %s", path,
                    why ? why : "unknown error");
    }
    for (int i = 0; i < nloaded; i++) {
        if (loaded[i].handle == h) {
            /* Loaded before (a reload): drop the reference this dlopen() added. */
            dlclose(h);
            return 0;
        }
    }
    int rc;
    if (nloaded == PLUGINS_MAX) {
        rc = fail(err, errlen, -E2BIG, "plugin %s: more than %d plugins", path, PLUGINS_MAX);
        goto fail;
    }
    zd_gateway_plugin_fn entry;
    /* POSIX's way to turn dlsym's void * into a function pointer without a cast warning. */
    *(void **)(&entry) = dlsym(h, ZD_GATEWAY_PLUGIN_SYMBOL);
    if (!entry) {
        rc = fail(err, errlen, -ENOEXEC,
                  "plugin %s: no function %s: not a zhida gateway plugin (see docs/GATEWAYS.md)",
                  path, ZD_GATEWAY_PLUGIN_SYMBOL);
        goto fail;
    }
    const zd_gateway_type *const *types = entry(ZD_GATEWAY_ABI_VERSION);
    if (!types) {
        rc = fail(err, errlen, -EINVAL,
                  "plugin %s: refuses zhidad's gateway ABI version %d (%s returned NULL): "
                  "rebuild the plugin against this zhidad's include/zhida/gateway.h",
                  path, ZD_GATEWAY_ABI_VERSION, ZD_GATEWAY_PLUGIN_SYMBOL);
        goto fail;
    }
    int n = 0;
    if ((rc = check_types(path, types, &n, err, errlen)))
        goto fail;
    if (nowners + n > (int)(sizeof(owners) / sizeof(owners[0]))) {
        rc = fail(err, errlen, -E2BIG, "plugin %s: too many plugin gateway types", path);
        goto fail;
    }
    char *copy = strdup(path);
    if (!copy) {
        rc = fail(err, errlen, -ENOMEM, "out of memory");
        goto fail;
    }
    /* From here the types are registered and the handle is kept for good. */
    loaded[nloaded] = (struct loaded){h, copy};
    char names[256] = "";
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if ((rc = zd_gateway_type_register(types[i], err, errlen))) {
            nloaded++;
            return rc;
        }
        owners[nowners++] = (struct owner){types[i], nloaded};
        if (at < sizeof(names))
            at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "",
                                   types[i]->name);
    }
    nloaded++;
    zd_info("plugin %s: gateway types %s", path, n ? names : "(none)");
    return 0;
fail:
    dlclose(h);
    return rc;
}

int zd_gateway_plugins_load(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return fail(err, errlen, -errno, "cannot read the plugin dir %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_plugin_name(e->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(names, cap * sizeof(*names));
            if (!p) {
                rc = fail(err, errlen, -ENOMEM, "out of memory");
                goto out;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = fail(err, errlen, -ENOMEM, "out of memory");
            goto out;
        }
        n++;
    }
    if (n > 1) /* qsort's array may not be NULL, even with nothing to sort (UBSan) */
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[PATH_MAX];
        struct stat st;
        if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= (int)sizeof(path))
            rc = fail(err, errlen, -ENAMETOOLONG, "plugin %s/%s: path too long", dir, names[i]);
        else if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = load_one(path, err, errlen);
    }
out:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
