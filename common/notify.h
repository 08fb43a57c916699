/* The sd_notify(3) protocol without libsystemd: one datagram to $NOTIFY_SOCKET, so a
 * Type=notify unit knows when zhidad is ready or stopping. A no-op outside systemd. */
#ifndef ZD_NOTIFY_H
#define ZD_NOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", "STATUS=...", newline-separated). Returns 0 (also
 * when there is no $NOTIFY_SOCKET) or a negative errno. */
int zd_notify(const char *state);

#endif
