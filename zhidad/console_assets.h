/* The operator console's static files, built into zhidad (console/, generated into
 * console_assets.c by zhidad/gen_console_assets.py at build time). */
#ifndef ZD_CONSOLE_ASSETS_H
#define ZD_CONSOLE_ASSETS_H

#include <stddef.h>

typedef struct zd_console_asset {
    const char *name;         /* served as /console/<name> */
    const char *content_type; /* with charset for text */
    const char *etag;         /* strong, quoted: "\"<hex>\"" */
    const unsigned char *data;
    size_t len;
} zd_console_asset;

extern const zd_console_asset zd_console_assets[];
extern const int zd_console_nassets;

#endif
