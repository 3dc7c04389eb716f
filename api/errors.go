package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error codes of the JSON error body. The JWE ones are the reference
// document's.
const (
	CodeInvalidJSON          = "INVALID_JSON"
	CodeValidation           = "VALIDATION_ERROR"
	CodeUnauthenticated      = "UNAUTHENTICATED"
	CodeSessionExpired       = "SESSION_EXPIRED"
	CodeForbidden            = "FORBIDDEN"
	CodeNotFound             = "NOT_FOUND"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeConflict             = "CONFLICT"
	CodeBodyTooLarge         = "BODY_TOO_LARGE"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	CodeIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	CodeInternal             = "INTERNAL"
	CodeUnavailable          = "UNAVAILABLE"

	CodeEncryptionRequired = "ENCRYPTION_REQUIRED"
	CodeInvalidPublicKey   = "INVALID_PUBLIC_KEY"
	CodeInvalidPayload     = "INVALID_PAYLOAD"
	CodeCantDecryptPayload = "CANT_DECRYPT_PAYLOAD"
)

// Error is an answer other than success: an HTTP status and the JSON body
// {"code": ..., "message": ...}. Handlers return it (or wrap it) to choose
// the status; any other error becomes 500 INTERNAL and is logged, not shown.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// ErrNotFound is what a CardHost returns (or wraps) when a customer, card or
// balance does not exist. The API answers 404 NOT_FOUND, the same as for a
// resource of another partner, so that existence is never revealed. Errors
// with a method NotFound() bool that returns true are treated the same way.
var ErrNotFound = errors.New("not found")

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func notFound() *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "resource not found"}
}

// asError translates err into the answer the client sees. The card host's
// errors map here; add its sentinels as they appear.
func asError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	var nf interface{ NotFound() bool }
	if errors.Is(err, ErrNotFound) || (errors.As(err, &nf) && nf.NotFound()) {
		return notFound(), true
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body larger than %d bytes", mbe.Limit), true
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}, false
}

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"INTERNAL","message":"internal error"}`)
	}
	writeRaw(w, status, "application/json", b)
}

func writeRaw(w http.ResponseWriter, status int, contentType string, b []byte) {
	h := w.Header()
	if contentType != "" && b != nil {
		h.Set("Content-Type", contentType)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if b != nil && status != http.StatusNoContent {
		w.Write(b)
	}
}

func writeError(w http.ResponseWriter, e *Error) { writeJSON(w, e.Status, e) }
