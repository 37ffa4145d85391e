/* OpenAI error replies: the {"error": {message, type, param, code}} object
 * with its HTTP status, plus a Retry-After hint when the server is busy or
 * still loading, which clients (the official ones included) honour before
 * retrying. */
#include <stdlib.h>
#include <string.h>
#include "http_server.h"

enum MHD_Result http_reply_error(http_req *r, const rl_oai_err *e) {
    json_t *body = rl_oai_error_json(e);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return http_reply_text(r, 500, "application/json",
                               "{\"error\":{\"message\":\"cannot encode the error\",\"type\":\"server_error\","
                               "\"param\":null,\"code\":null}}");
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (e->status == 429 || e->status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (e->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    r->status = e->status;
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)e->status, resp);
    MHD_destroy_response(resp);
    return rc;
}
