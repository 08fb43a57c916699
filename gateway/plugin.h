/* The gateway plugin loader: the .so files of the configured plugin dir, each exporting
 * ZD_GATEWAY_PLUGIN_SYMBOL (include/zhida/gateway.h), whose types join the registry of
 * gateway/gateway.h. Only dlfcn and the registry: no loop, no I/O besides reading the dir. */
#ifndef ZD_GATEWAY_PLUGIN_H
#define ZD_GATEWAY_PLUGIN_H

#include <stddef.h>

/* Loads every regular file named "*.so" in dir (an absolute path, borrowed), in byte order of
 * their names: dlopen()s it, calls its entry point with ZD_GATEWAY_ABI_VERSION and registers
 * the types it returns (zd_gateway_type_register). A file loaded before (the same dlopen
 * handle, as on a configuration reload) is skipped, so calling this again is harmless.
 * A plugin is never unloaded: its types must outlive every gateway made of them.
 * Returns 0, or a negative errno-style code with a message in err naming the file (and, for a
 * type name taken already, what took it): a file that does not load, has no entry point,
 * refuses the host's ABI version (returns NULL), returns a type built for another ABI
 * version, or a type whose name clashes with a built-in or another plugin's type. Nothing of
 * a refused file is registered. */
int zd_gateway_plugins_load(const char *dir, char *err, size_t errlen);

/* The plugin file (borrowed, absolute) that registered type `name`, or NULL. */
const char *zd_gateway_plugin_of(const char *name);

#endif
