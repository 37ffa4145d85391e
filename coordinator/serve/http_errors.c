/* OpenAI error replies: the {"error": {message, type, param, code}} object
 * with its HTTP status, plus a Retry-After hint when the server is busy or
 * still loading, which clients (the official ones included) honour before
 * retrying. */
#include <stdlib.h>
#include <string.h>
#include "http_server.h"

enum MHD_Result http_reply_error(http_req *r, const rl_oai_err *e) {
    int status = e->status;
    struct MHD_Response *resp = http_json_response(rl_oai_error_json(e), &status);
    if (!resp)
        return MHD_NO;
    if (status == 429 || status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    return http_queue(r, status, resp);
}
