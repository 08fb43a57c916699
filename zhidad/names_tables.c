/* The GB/T 2260 region and GB/T 4754 industry name tables the daemon words reasons with
 * (matcher/reasons.h), found where the client finds them (docs/DESIGN.md "The command-line
 * client and the name tables"): $ZHIDA_DATA_DIR, ../data and ../share/zhida beside the binary,
 * then the installed datadir. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "zhidad/names_tables.h"

#ifndef ZHIDA_DATADIR
#define ZHIDA_DATADIR "/usr/local/share/zhida"
#endif

static int is_region_table(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return strncmp(d->d_name, "regions", 7) == 0 && n > 4 && strcmp(d->d_name + n - 4, ".tsv") == 0;
}

static void load(zd_names *t, const char *dir, const char *file)
{
    char path[PATH_MAX];
    zd_error e = {0};
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (zd_names_load(t, path, &e) < 0)
        zd_warn("name tables: %s", e.message);
}

int zd_names_tables_load(zd_names_tables *nt)
{
    memset(nt, 0, sizeof(*nt));
    if (!(nt->regions = zd_names_new()) || !(nt->industries = zd_names_new())) {
        zd_names_tables_free(nt);
        return -ENOMEM;
    }
    nt->names.regions = nt->regions;
    nt->names.industries = nt->industries;
    char exe[PATH_MAX], beside[2][PATH_MAX + 32];
    const char *dirs[4];
    int n = 0;
    const char *env = getenv("ZHIDA_DATA_DIR");
    if (env && *env)
        dirs[n++] = env;
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(beside[0], sizeof(beside[0]), "%s/../data", exe);
            snprintf(beside[1], sizeof(beside[1]), "%s/../share/zhida", exe);
            dirs[n++] = beside[0];
            dirs[n++] = beside[1];
        }
    }
    dirs[n++] = ZHIDA_DATADIR;
    for (int i = 0; i < n; i++) {
        char probe[PATH_MAX];
        snprintf(probe, sizeof(probe), "%s/industries.tsv", dirs[i]);
        if (access(probe, R_OK) != 0)
            continue;
        load(nt->industries, dirs[i], "industries.tsv");
        struct dirent **list = NULL;
        int k = scandir(dirs[i], &list, is_region_table, alphasort);
        for (int j = 0; j < k; j++) {
            load(nt->regions, dirs[i], list[j]->d_name);
            free(list[j]);
        }
        free(list);
        zd_info("name tables: %zu regions, %zu industries from %s", zd_names_count(nt->regions),
                zd_names_count(nt->industries), dirs[i]);
        return 0;
    }
    zd_warn("name tables: none found ($ZHIDA_DATA_DIR, ../data beside zhidad, " ZHIDA_DATADIR
            "): reasons name regions and industries by their codes");
    return 0;
}

void zd_names_tables_free(zd_names_tables *nt)
{
    zd_names_free(nt->regions);
    zd_names_free(nt->industries);
    memset(nt, 0, sizeof(*nt));
}
