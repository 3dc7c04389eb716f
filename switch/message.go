package authswitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/specs"
	"github.com/moov-io/iso8583"
	moovErrors "github.com/moov-io/iso8583/errors"
)

// errFormat marks a request that unpacked but whose fields do not make
// sense (an amount that is not a number, malformed DE48 or DE90).
var errFormat = errors.New("format error")

// errAcquirer marks a request whose DE32 is not one of its link's
// acquirers; it is answered as a format error (docs/decisions.md).
var errAcquirer = fmt.Errorf("acquirer not of this link: %w", errFormat)

// outcome is what handling one frame produced.
type outcome struct {
	answer []byte // packed answer, without length header; nil: nothing to send
	close  bool   // the stream cannot be trusted: close the connection
}

// handle turns one frame into its answer. It never panics: a panic while
// handling is recovered, counted and answered with a system error.
func (s *Server) handle(ctx context.Context, raw []byte, received time.Time, remote string) (out outcome) {
	var (
		req  *iso8583.Message
		mti  string
		stan string
	)
	defer func() {
		if r := recover(); r != nil {
			s.m.panics.Inc()
			// The panic value may hold message data: log its type only.
			s.log.Error("panic handling message", "remote", remote, "mti", mti, "stan", stan, "panic_type", fmt.Sprintf("%T", r))
			out = s.errorAnswer(req, mti, stan, cardhost.SystemError)
		}
	}()

	req = iso8583.NewMessage(s.spec)
	if err := req.Unpack(raw); err != nil {
		s.m.formatErrors.Inc()
		mti, stan = s.lenientHeader(req)
		field := ""
		var ue *moovErrors.UnpackError
		if errors.As(err, &ue) {
			field = ue.FieldID
		}
		if mti == "" || stan == "" || !isRequestMTI(mti) {
			s.log.Warn("unreadable message, closing connection", "remote", remote, "field", field)
			return outcome{close: true}
		}
		s.log.Warn("message not parsable", "remote", remote, "mti", mti, "stan", stan, "field", field)
		return s.formatError(req, mti, stan)
	}

	mti, _ = req.GetMTI()
	stan, _ = req.GetString(11)
	if err := specs.Check(req, len(raw)); err != nil {
		s.m.formatErrors.Inc()
		if stan == "" || !isRequestMTI(mti) {
			s.log.Warn("message without answerable MTI or STAN, dropped", "remote", remote, "mti", mtiLabel(mti))
			return outcome{}
		}
		s.log.Warn("message not valid", "remote", remote, "mti", mti, "stan", stan, "err", err)
		return s.formatError(req, mti, stan)
	}
	s.m.requests.WithLabelValues(s.p.name, mtiLabel(mti)).Inc()
	if !isRequestMTI(mti) || mti[0] != s.p.version || stan == "" {
		s.m.formatErrors.Inc()
		if stan == "" || !isRequestMTI(mti) {
			s.log.Warn("message without answerable MTI or STAN, dropped", "remote", remote, "mti", mtiLabel(mti))
			return outcome{}
		}
		s.log.Warn("unknown MTI", "remote", remote, "mti", mti, "stan", stan)
		return s.errorAnswer(req, mti, stan, cardhost.FormatError)
	}

	if mti == s.p.netMTI {
		return s.networkManagement(req, mti, stan, remote)
	}
	class, ok := classOf(mti)
	if !ok {
		s.m.formatErrors.Inc()
		s.log.Warn("unknown MTI", "remote", remote, "mti", mti, "stan", stan)
		return s.errorAnswer(req, mti, stan, cardhost.FormatError)
	}

	ar, err := s.authRequest(req, class, mti, received)
	if err != nil {
		s.m.formatErrors.Inc()
		s.log.Warn("message fields not usable", "remote", remote, "mti", mti, "stan", stan, "err", err)
		return s.formatError(req, mti, stan)
	}

	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DecideTimeout)
	dec, err := s.auth.Authorize(dctx, ar)
	cancel()
	s.m.decide.Observe(time.Since(start).Seconds())
	if errors.Is(err, cardhost.ErrUnstorable) {
		s.m.formatErrors.Inc()
		s.log.Warn("request refused by the database", "remote", remote, "mti", mti, "stan", stan, "pan", cardhost.MaskPAN(ar.PAN))
		return s.formatError(req, mti, stan)
	}
	if err != nil {
		s.log.Warn("authorizer unavailable", "remote", remote, "mti", mti, "stan", stan, "pan", cardhost.MaskPAN(ar.PAN), "err", err)
		dec = cardhost.Decision{Reason: cardhost.IssuerUnavailable}
	}
	out = s.answer(req, mti, ar, dec)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("answered", "remote", remote, "mti", mti, "stan", stan, "pan", cardhost.MaskPAN(ar.PAN),
			"amount", ar.Amount, "currency", ar.Currency, "reason", string(dec.Reason), "duplicate", dec.Duplicate,
			"took", time.Since(received))
	}
	return out
}

// lenientHeader reads MTI and STAN from a message whose unpacking failed:
// moov-io keeps the fields it read before the failure. Both must be
// digits of the profile's widths to count.
func (s *Server) lenientHeader(m *iso8583.Message) (mti, stan string) {
	defer func() {
		if recover() != nil {
			mti, stan = "", ""
		}
	}()
	mti, _ = m.GetMTI()
	if len(mti) != 4 || !digits(mti) {
		return "", ""
	}
	stan, _ = m.GetString(11)
	if len(stan) != s.p.stanLen || !digits(stan) {
		return mti, ""
	}
	return mti, stan
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// mtiLabel keeps the MTI label of the metrics to well-formed values.
func mtiLabel(mti string) string {
	if len(mti) == 4 && digits(mti) {
		return mti
	}
	return "invalid"
}

// acquirerOfLink reports whether DE32 (or an original's acquirer) id
// belongs to this link: one of its acquirer IDs when it lists any, else
// none of the other links'.
func (s *Server) acquirerOfLink(id string) bool {
	if len(s.cfg.AcquirerIDs) > 0 {
		return slices.Contains(s.cfg.AcquirerIDs, id)
	}
	return !slices.Contains(s.cfg.OtherAcquirerIDs, id)
}

// numericFields must hold digits when present (those of them that are
// BCD on the wire are digits already).
var numericFields = [...]int{2, 3, 7, 11, 12, 13, 14, 32}

// answer packs the answer to an authorisation-class request.
func (s *Server) answer(req *iso8583.Message, mti string, ar *cardhost.AuthRequest, dec cardhost.Decision) outcome {
	resp, code, err := s.baseAnswer(req, mti, dec.Reason)
	if err != nil {
		return s.errorAnswer(nil, mti, ar.STAN, cardhost.SystemError)
	}
	if dec.ApprovedAmount > 0 && dec.Reason == cardhost.PartialApproved {
		if err := s.partialAmounts(resp, ar, dec.ApprovedAmount); err != nil {
			return s.errorAnswer(nil, mti, ar.STAN, cardhost.SystemError)
		}
	}
	if dec.Reason.Approval() {
		ac := dec.ApprovalCode
		if ac == "" {
			ac = s.approvalCode()
		}
		if err := resp.Field(38, fitAN(ac, 6)); err != nil {
			return s.errorAnswer(nil, mti, ar.STAN, cardhost.SystemError)
		}
	}
	if dec.HasAvailable {
		ccy := dec.Currency
		if ccy == "" {
			ccy = ar.BillingCurrency
		}
		if ccy == "" {
			ccy = ar.Currency
		}
		de54 := additionalAmount(ccy, dec.Available)
		if s.p.cmf {
			// The CMF's entry has the currency's minor unit after it (21).
			de54 = de54[:7] + string(rune('0'+specs.MinorUnit(ccy)%10)) + de54[7:]
		}
		if err := resp.Field(54, de54); err != nil {
			return s.errorAnswer(nil, mti, ar.STAN, cardhost.SystemError)
		}
	}
	return s.pack(resp, code)
}

// partialAmounts sets a partial approval's amounts in its answer: DE4 the
// approved amount (the CMF keeps DE4's currency and minor unit inside it),
// DE6, when the request had one, in the same proportion, rounded down.
func (s *Server) partialAmounts(resp *iso8583.Message, ar *cardhost.AuthRequest, approved int64) error {
	billing := int64(0)
	if ar.BillingAmount > 0 && ar.Amount > 0 {
		v := new(big.Int).Mul(big.NewInt(ar.BillingAmount), big.NewInt(approved))
		billing = v.Quo(v, big.NewInt(ar.Amount)).Int64()
	}
	set := func(n int, v int64, ccy string) error {
		if s.p.cmf {
			return resp.Field(n, specs.Amount2003{Currency: ccy, MinorUnit: specs.MinorUnit(ccy), Amount: v}.String())
		}
		return resp.Field(n, fmt.Sprintf("%012d", v))
	}
	if err := set(4, approved, ar.Currency); err != nil {
		return fmt.Errorf("DE4: %w", err)
	}
	if ar.BillingAmount > 0 {
		if err := set(6, billing, ar.BillingCurrency); err != nil {
			return fmt.Errorf("DE6: %w", err)
		}
	}
	return nil
}

// baseAnswer starts an answer: response MTI, the echoed fields, DE39. It
// turns req into the answer: req is not usable as the request after it.
func (s *Server) baseAnswer(req *iso8583.Message, mti string, reason cardhost.Reason) (*iso8583.Message, string, error) {
	code, err := specs.ActionCode(s.p.name, string(reason))
	if err != nil {
		s.log.Error("no action code", "reason", string(reason), "err", err)
		if code, err = specs.ActionCode(s.p.name, string(cardhost.SystemError)); err != nil {
			return nil, "", err
		}
	}
	var resp *iso8583.Message
	if req != nil {
		// The answer is the request itself, less what is not echoed: its
		// echoed fields are already parsed, and building them afresh
		// (a field object each, from a string) was a tenth of the
		// switch's CPU under load. The bytes are the same (golden tests).
		// Its fields are those of its bitmap as unpacked (GetFields
		// would copy them all first).
		resp = req
		bm := req.Bitmap()
		for n := 2; n <= bm.Len(); n++ {
			if !bm.IsSet(n) || bm.IsBitmapPresenceBit(n) {
				continue
			}
			if v, err := req.GetString(n); err != nil || v == "" || !s.p.echoes(n) {
				req.UnsetField(n)
			}
		}
		// The bitmap is as unpacked: what an answer sets (an answer
		// abandoned half-way, then answered again as an error) is not in it.
		for _, n := range []int{38, 39, 54} {
			if !bm.IsSet(n) {
				req.UnsetField(n)
			}
		}
	} else {
		resp = iso8583.NewMessage(s.spec)
	}
	resp.MTI(responseMTI(mti))
	if err := resp.Field(39, code); err != nil {
		return nil, "", fmt.Errorf("set DE39: %w", err)
	}
	return resp, code, nil
}

// formatError answers a request that could not be read or used with
// 9100/30, echoing of the request's fields only those a client matches
// answers by (DE2, DE7, DE11, DE32, DE37, DE41, DE42, and DE24 in
// iso2003) that were read and are valid: of a message whose unpacking
// failed, moov-io keeps the fields before the broken one.
func (s *Server) formatError(req *iso8583.Message, mti, stan string) outcome {
	resp, code, err := s.baseAnswer(nil, mti, cardhost.FormatError)
	if err != nil || resp.Field(11, stan) != nil {
		return outcome{close: true}
	}
	if req != nil {
		s.copyReadable(req, resp)
	}
	return s.pack(resp, code)
}

// copyReadable copies the error-echo fields of req that are whole and
// valid into resp. req may be half unpacked: any panic of moov-io on it
// only ends the copying.
func (s *Server) copyReadable(req, resp *iso8583.Message) {
	defer func() { recover() }()
	for _, n := range s.p.errorEchoFields {
		if n == 11 {
			continue
		}
		v, err := req.GetString(n)
		if err != nil || v == "" || !printableASCII(v) {
			continue
		}
		if n != 41 && n != 42 && n != 37 && !digits(v) {
			continue
		}
		if resp.Field(n, v) != nil {
			resp.UnsetField(n)
			continue
		}
		// A value the spec cannot pack again (a short fixed field) is left out.
		if _, err := resp.GetField(n).Pack(); err != nil {
			resp.UnsetField(n)
		}
	}
}

func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// errorAnswer answers with reason, echoing req's fields when req is
// usable and only MTI and STAN otherwise.
func (s *Server) errorAnswer(req *iso8583.Message, mti, stan string, reason cardhost.Reason) outcome {
	if mti == "" || stan == "" || !isRequestMTI(mti) {
		return outcome{close: req == nil}
	}
	if req != nil {
		if resp, code, err := s.baseAnswer(req, mti, reason); err == nil {
			if out := s.pack(resp, code); out.answer != nil {
				return out
			}
		}
	}
	resp, code, err := s.baseAnswer(nil, mti, reason)
	if err != nil {
		return outcome{close: true}
	}
	if err := resp.Field(11, stan); err != nil {
		return outcome{close: true}
	}
	return s.pack(resp, code)
}

func (s *Server) pack(resp *iso8583.Message, code string) outcome {
	b, err := resp.Pack()
	if err != nil {
		s.log.Error("pack answer", "err", err)
		return outcome{}
	}
	mti, _ := resp.GetMTI()
	s.m.answers.WithLabelValues(s.p.name, mti, code).Inc()
	return outcome{answer: b}
}

// networkManagement answers sign-on, sign-off and echo.
func (s *Server) networkManagement(req *iso8583.Message, mti, stan, remote string) outcome {
	code, _ := req.GetString(s.p.netField)
	reason := cardhost.Approved
	switch code {
	case s.p.signOn:
		s.log.Info("sign-on", "remote", remote)
	case s.p.signOff:
		s.log.Info("sign-off", "remote", remote)
	case s.p.echo:
	default:
		s.m.formatErrors.Inc()
		s.log.Warn("unknown network management code", "remote", remote, "code", code, "stan", stan)
		reason = cardhost.FormatError
	}
	resp, dc, err := s.baseAnswer(req, mti, reason)
	if err != nil {
		return s.errorAnswer(nil, mti, stan, cardhost.SystemError)
	}
	if code != "" {
		if err := resp.Field(s.p.netField, code); err != nil {
			return s.errorAnswer(nil, mti, stan, cardhost.SystemError)
		}
	}
	return s.pack(resp, dc)
}

// approvalCode makes a DE38 for an approval that came without one.
func (s *Server) approvalCode() string {
	return fmt.Sprintf("%06d", s.approvals.Add(1)%1000000)
}

// maxDE54 is the largest amount an n12 field holds (ledger.MaxBalance).
const maxDE54 = 999_999_999_999

// fitAN pads with spaces or cuts v to n characters.
func fitAN(v string, n int) string {
	if len(v) >= n {
		return v[:n]
	}
	return v + strings.Repeat(" ", n-len(v))
}

// additionalAmount formats one DE54 amount: account type "00", amount type
// "02" (available balance), currency n3, sign C or D, amount n12. An amount
// beyond 12 digits (the ledger's bounds keep balances within them; see
// docs/ledger.md, "Bounds") is clamped to the widest n12, so the field
// never outgrows its format.
func additionalAmount(ccy string, available int64) string {
	sign := byte('C')
	if available < 0 {
		sign = 'D'
		available = -max(available, -maxDE54)
	}
	available = min(available, maxDE54)
	if len(ccy) != 3 || ccy[0]|ccy[1]|ccy[2] >= 0x80 || available < 0 || available > 999_999_999_999 {
		// Off the usual shape (and the most negative int64): fmt's rules.
		return fmt.Sprintf("0002%3.3s%c%012d", ccy, sign, available)
	}
	var b [20]byte
	copy(b[:], "0002")
	copy(b[4:], ccy)
	b[7] = sign
	for i := 19; i >= 8; i-- {
		b[i] = byte('0' + available%10)
		available /= 10
	}
	return string(b[:])
}
