/* The web page of `relais serve` (coordinator/serve/web), compiled into the
 * binary: cmake/embed_web.cmake turns every file of that folder into a byte
 * array at build time, listed here by the URL path it is served at. */
#ifndef RELAIS_WEB_ASSETS_H
#define RELAIS_WEB_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path; /* "/app.js"; "/" is index.html again */
    const char *content_type;
    const unsigned char *data; /* len bytes (and a NUL after them) */
    size_t len;
} rl_web_asset;

/* The files, ended by an entry whose path is NULL. */
extern const rl_web_asset rl_web_assets[];

#endif
