/* GET / and the page's other files (coordinator/serve/web, compiled in: see
 * web_assets.h). The page needs no API key to load; it asks for one and
 * sends it with its API calls. Every file goes out with its content type,
 * nosniff, and a Content-Security-Policy allowing only this origin's
 * scripts, styles and requests: the page shows model output, and should a
 * piece of it ever reach the DOM as markup, no script of it could run nor
 * could anything be sent elsewhere. */
#include <string.h>
#include "http_server.h"
#include "web_assets.h"

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                          "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static const rl_web_asset *find(const char *url) {
    for (const rl_web_asset *a = rl_web_assets; a->path; a++)
        if (!strcmp(a->path, url))
            return a;
    return NULL;
}

bool http_web_has(const char *url) { return find(url) != NULL; }

enum MHD_Result http_web(http_req *r, const char *url) {
    const rl_web_asset *a = find(url);
    if (!a)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
        MHD_add_response_header(resp, "Content-Security-Policy", CSP);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    }
    return http_queue(r, 200, resp);
}
