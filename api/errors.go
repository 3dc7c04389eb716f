package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
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
	CodeTooManyAttempts      = "TOO_MANY_ATTEMPTS"
	CodeBusy                 = "BUSY"
	CodeCardLimit            = "CARD_LIMIT"
	CodeCardJobLimit         = "CARD_JOB_LIMIT"

	// Card host refusals (409), one code per rule.
	CodeIrreversibleLock  = "IRREVERSIBLE_LOCK"
	CodeSystemLock        = "SYSTEM_LOCK" // a code-7 lock by the system: the partner or an admin unlocks it
	CodeNotLocked         = "NOT_LOCKED"
	CodeCardState         = "CARD_STATE"
	CodeCardType          = "CARD_TYPE"
	CodeNotDigitalFirst   = "NOT_DIGITAL_FIRST"
	CodeKYCNotVerified    = "KYC_NOT_VERIFIED"
	CodeInsufficientFunds = "INSUFFICIENT_FUNDS"
	CodeBalanceNotActive  = "BALANCE_NOT_ACTIVE"
	CodeBalanceExists     = "BALANCE_EXISTS"
	CodeDuplicateRef      = "DUPLICATE_REFERENCE"

	// Money in (DESIGN section 6).
	CodeAmountTooLarge   = "AMOUNT_TOO_LARGE"   // 422: above the operation's bound
	CodeLimitExceeded    = "LIMIT_EXCEEDED"     // 422: a balance would pass its bound
	CodeReloadNotAllowed = "RELOAD_NOT_ALLOWED" // 403: the customer channel reloads nothing
	CodeSameApprover     = "SAME_APPROVER"      // 403: four eyes need another Admin
	CodeAlreadyDecided   = "ALREADY_DECIDED"    // 409: approval or exception decided already

	CodeUnknownCountry = "UNKNOWN_COUNTRY" // 422: a spend rule names no ISO 3166-1 country

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
	if e := hostError(err); e != nil {
		return e, true
	}
	if errors.Is(err, ledger.ErrDatabase) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "ledger unavailable, retry later"}, false
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

// hostErrors maps the card host's and the ledger's sentinels to answers,
// first match wins. A 409's message is the sentinel's own text (the wrapped
// chain names internal ids); a 400's is the whole error, which says what
// input was wrong.
var hostErrors = []struct {
	err    error
	status int
	code   string
}{
	{cardhost.ErrNotFound, http.StatusNotFound, CodeNotFound},
	{cardhost.ErrCardRemoved, http.StatusNotFound, CodeNotFound},
	{ledger.ErrNotFound, http.StatusNotFound, CodeNotFound},
	{cardhost.ErrIrreversibleLock, http.StatusConflict, CodeIrreversibleLock},
	{cardhost.ErrSystemLock, http.StatusForbidden, CodeSystemLock},
	{cardhost.ErrNotLocked, http.StatusConflict, CodeNotLocked},
	{cardhost.ErrCardState, http.StatusConflict, CodeCardState},
	{cardhost.ErrCardType, http.StatusConflict, CodeCardType},
	{cardhost.ErrNotDigitalFirst, http.StatusConflict, CodeNotDigitalFirst},
	{cardhost.ErrKYCNotVerified, http.StatusConflict, CodeKYCNotVerified},
	{cardhost.ErrConflict, http.StatusConflict, CodeConflict},
	{ledger.ErrInsufficientFunds, http.StatusConflict, CodeInsufficientFunds},
	{ledger.ErrInsufficientPartnerFunds, http.StatusConflict, CodeInsufficientFunds},
	{ledger.ErrAccountNotActive, http.StatusConflict, CodeBalanceNotActive},
	{ledger.ErrAccountExists, http.StatusConflict, CodeBalanceExists},
	{ledger.ErrDuplicateRef, http.StatusConflict, CodeDuplicateRef},
	{ledger.ErrAmountTooLarge, http.StatusUnprocessableEntity, CodeAmountTooLarge},
	{ledger.ErrLimitExceeded, http.StatusUnprocessableEntity, CodeLimitExceeded},
	{ledger.ErrSameApprover, http.StatusForbidden, CodeSameApprover},
	{ledger.ErrDecided, http.StatusConflict, CodeAlreadyDecided},
	{cardhost.ErrCardLimit, http.StatusTooManyRequests, CodeCardLimit},
	{cardhost.ErrCardJobLimit, http.StatusTooManyRequests, CodeCardJobLimit},
	{cardhost.ErrInvalidLockCode, http.StatusBadRequest, CodeValidation},
	{cardhost.ErrUnknownCountry, http.StatusUnprocessableEntity, CodeUnknownCountry},
	{cardhost.ErrInvalidInput, http.StatusBadRequest, CodeValidation},
	{ledger.ErrInvalidAmount, http.StatusBadRequest, CodeValidation},
	{ledger.ErrUnknownCurrency, http.StatusBadRequest, CodeValidation},
	{ledger.ErrCurrencyMismatch, http.StatusBadRequest, CodeValidation},
	{ledger.ErrInvalid, http.StatusBadRequest, CodeValidation},
}

func hostError(err error) *Error {
	for _, m := range hostErrors {
		if errors.Is(err, m.err) {
			msg := m.err.Error()
			switch m.status {
			case http.StatusNotFound:
				msg = "resource not found"
			case http.StatusBadRequest, http.StatusUnprocessableEntity:
				msg = err.Error() // says which input; the card host never puts card data in errors
			}
			return &Error{Status: m.status, Code: m.code, Message: msg}
		}
	}
	return nil
}
