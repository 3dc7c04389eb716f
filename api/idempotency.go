package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/antaca/antaca/internal/periodic"
	"github.com/antaca/antaca/ledger"
)

// abandonAfter is how long a first request may hold its idempotency key
// before a retry may take it over (the first one crashed).
const abandonAfter = time.Minute

// storedAnswer is an answer as sent on the wire, kept for replay.
type storedAnswer struct {
	status      int
	contentType string
	body        []byte
	location    string
}

// idempotency is a claimed key whose answer is stored when the handler ends.
type idempotency struct {
	scope, key string
	ctx        context.Context
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestHash identifies a request for its idempotency key: method, path,
// the client's Public-Key (an encrypted answer is for that key) and the
// plaintext body, so re-encrypting the same request is the same request.
func requestHash(r *http.Request, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", r.Method, r.URL.Path, r.Header.Get(headerPublicKey))
	h.Write(body)
	return h.Sum(nil)
}

// claimIdempotency records key for this request, or returns the stored
// answer of an earlier request with the same key and body. Another body
// under the same key is 422; the same key while the first request is still
// running is 409.
func (s *Server) claimIdempotency(ctx context.Context, p *Principal, key string, r *http.Request, body []byte, now time.Time) (*idempotency, *storedAnswer, *Error) {
	if !validIdempotencyKey(key) {
		return nil, nil, errorf(http.StatusBadRequest, CodeValidation, "Idempotency-Key must be 1 to %d printable ASCII characters", maxIdempotencyKey)
	}
	scope := p.scope()
	hash := requestHash(r, body)
	store := s.access()
	claimed, err := store.ClaimIdempotencyKey(ctx, scope, key, hash, now)
	if err != nil {
		return nil, nil, s.internal("idempotency claim", err)
	}
	idem := &idempotency{scope: scope, key: key, ctx: ctx}
	if claimed {
		return idem, nil, nil
	}
	row, err := store.IdempotencyKey(ctx, scope, key)
	if errors.Is(err, ledger.ErrNotFound) {
		// Deleted after a 5xx between our insert and select: claim again.
		return s.claimIdempotency(ctx, p, key, r, body, now)
	}
	if err != nil {
		return nil, nil, s.internal("idempotency load", err)
	}
	status, created := row.Status, row.CreatedAt
	ans := storedAnswer{contentType: row.ContentType, body: row.Body, location: row.Location}
	if !bytes.Equal(row.RequestHash, hash) {
		return nil, nil, errorf(http.StatusUnprocessableEntity, CodeIdempotencyKeyReused, "Idempotency-Key was used for another request")
	}
	if status == nil {
		if now.Sub(created) < abandonAfter {
			return nil, nil, errorf(http.StatusConflict, CodeConflict, "a request with this Idempotency-Key is still in progress")
		}
		took, err := store.TakeOverIdempotencyKey(ctx, scope, key, now, created)
		if err != nil {
			return nil, nil, s.internal("idempotency take over", err)
		}
		if !took {
			return nil, nil, errorf(http.StatusConflict, CodeConflict, "a request with this Idempotency-Key is still in progress")
		}
		return idem, nil, nil
	}
	ans.status = int(*status)
	return nil, &ans, nil
}

// finishIdempotency stores the answer; after a 5xx it frees the key so the
// client may retry.
func (s *Server) finishIdempotency(idem *idempotency, ans *storedAnswer) {
	ctx, cancel := withoutCancel(idem.ctx)
	defer cancel()
	var err error
	if ans.status >= 500 {
		err = s.access().ReleaseIdempotencyKey(ctx, idem.scope, idem.key)
	} else {
		err = s.access().StoreIdempotentAnswer(ctx, idem.scope, idem.key, ans.status, ans.contentType, ans.body, ans.location)
	}
	if err != nil {
		s.log.Error("idempotency store", "err", err)
	}
}

// PruneExpired deletes expired sessions, idempotency keys older than
// IdempotencyTTL and login delays whose window has ended. RunPrune
// calls it periodically; it is safe for concurrent use.
func (s *Server) PruneExpired(ctx context.Context) (sessions, keys int64, err error) {
	now := s.cfg.Now()
	return s.access().PruneAccess(ctx, now, now.Add(-s.cfg.IdempotencyTTL), now.Add(-s.cfg.LoginWindow))
}

// RunPrune calls PruneExpired at once, then every interval, until ctx
// ends, logging failures (the next round tries again).
func (s *Server) RunPrune(ctx context.Context, every time.Duration) {
	periodic.Run(ctx, every, func(ctx context.Context) {
		sessions, keys, err := s.PruneExpired(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("prune expired sessions and keys", "err", err)
			}
			return
		}
		s.log.Debug("pruned", "sessions", sessions, "idempotency_keys", keys)
	})
}

// internal logs err and returns the 500 answer.
func (s *Server) internal(what string, err error) *Error {
	s.log.Error("api internal error", "op", what, "err", err)
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}
