// The one registry of error codes siyu sends to clients. A code's name is part of the API: once
// published it never changes meaning. Add new codes at the end of the list.
#pragma once

#include <string_view>

namespace siyu {

// X(enum name, wire name, HTTP status)
#define SIYU_ERROR_CODES(X)                               \
  X(kOk, "OK", 200)                                       \
  X(kMalformedJson, "MALFORMED_JSON", 400)                \
  X(kMissingField, "MISSING_FIELD", 400)                  \
  X(kInvalidField, "INVALID_FIELD", 400)                  \
  X(kUnknownField, "UNKNOWN_FIELD", 400)                  \
  X(kInvalidQuery, "INVALID_QUERY", 400)                  \
  X(kBadRequest, "BAD_REQUEST", 400)                      \
  X(kAmountOutOfRange, "AMOUNT_OUT_OF_RANGE", 400)        \
  X(kTotalMismatch, "TOTAL_MISMATCH", 400)                \
  X(kUnauthenticated, "UNAUTHENTICATED", 401)             \
  X(kInvalidCredentials, "INVALID_CREDENTIALS", 401)      \
  X(kForbidden, "FORBIDDEN", 403)                         \
  X(kNotFound, "NOT_FOUND", 404)                          \
  X(kRouteNotFound, "ROUTE_NOT_FOUND", 404)               \
  X(kMethodNotAllowed, "METHOD_NOT_ALLOWED", 405)         \
  X(kRequestTimeout, "REQUEST_TIMEOUT", 408)              \
  X(kOrderNoConflict, "ORDER_NO_CONFLICT", 409)           \
  X(kAlreadyExists, "ALREADY_EXISTS", 409)                \
  X(kBodyTooLarge, "BODY_TOO_LARGE", 413)                 \
  X(kUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", 415) \
  X(kHeadersTooLarge, "HEADERS_TOO_LARGE", 431)           \
  X(kUnknownChannelState, "UNKNOWN_CHANNEL_STATE", 422)   \
  X(kUnknownPerson, "UNKNOWN_PERSON", 422)                \
  X(kShuttingDown, "SHUTTING_DOWN", 503)                  \
  X(kStoreUnavailable, "STORE_UNAVAILABLE", 503)          \
  X(kBadSignature, "BAD_SIGNATURE", 401)                  \
  X(kBadBase64, "BAD_BASE64", 400)                        \
  X(kDecryptFailed, "DECRYPT_FAILED", 400)                \
  X(kBadReceiveId, "BAD_RECEIVE_ID", 400)                 \
  X(kMalformedXml, "MALFORMED_XML", 400)                  \
  X(kWechatInvalidCode, "WECHAT_INVALID_CODE", 400)       \
  X(kWechatRiskyUser, "WECHAT_RISKY_USER", 403)           \
  X(kWechatRateLimited, "WECHAT_RATE_LIMITED", 429)       \
  X(kWechatApiError, "WECHAT_API_ERROR", 502)             \
  X(kUpstreamUnavailable, "UPSTREAM_UNAVAILABLE", 502)    \
  X(kAlreadyDecided, "ALREADY_DECIDED", 409)              \
  X(kWechatNotConfigured, "WECHAT_NOT_CONFIGURED", 422)   \
  X(kWechatSecretRejected, "WECHAT_SECRET_REJECTED", 422) \
  X(kWechatIpNotAllowed, "WECHAT_IP_NOT_ALLOWED", 422)    \
  X(kWechatNoPermission, "WECHAT_NO_PERMISSION", 422)     \
  X(kWechatInvalidUsers, "WECHAT_INVALID_USERS", 422)     \
  X(kWechatInvalidPage, "WECHAT_INVALID_PAGE", 422)       \
  X(kExpressionSyntax, "EXPRESSION_SYNTAX", 400)          \
  X(kTypeMismatch, "TYPE_MISMATCH", 400)                  \
  X(kWindowOutOfRange, "WINDOW_OUT_OF_RANGE", 400)        \
  X(kUnknownTag, "UNKNOWN_TAG", 422)                      \
  X(kRuleCycle, "RULE_CYCLE", 422)                        \
  X(kTagInUse, "TAG_IN_USE", 409)                         \
  X(kInternal, "INTERNAL", 500)

enum class ErrorCode {
#define SIYU_X(e, name, http) e,
  SIYU_ERROR_CODES(SIYU_X)
#undef SIYU_X
};

// Stable wire name, e.g. "ORDER_NO_CONFLICT".
std::string_view ErrorCodeName(ErrorCode code);
// HTTP status the code maps to.
int ErrorCodeHttpStatus(ErrorCode code);

}  // namespace siyu
