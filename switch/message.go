package authswitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
		// Nothing of the broken message is echoed: only MTI and STAN.
		return s.errorAnswer(nil, mti, stan, cardhost.FormatError)
	}

	mti, _ = req.GetMTI()
	stan, _ = req.GetString(11)
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
		return s.errorAnswer(req, mti, stan, cardhost.FormatError)
	}

	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DecideTimeout)
	dec, err := s.auth.Authorize(dctx, ar)
	cancel()
	s.m.decide.Observe(time.Since(start).Seconds())
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

// authRequest fills the issuer's view of a request from its fields.
func (s *Server) authRequest(m *iso8583.Message, class cardhost.MessageClass, mti string, received time.Time) (*cardhost.AuthRequest, error) {
	get := func(n int) string {
		v, _ := m.GetString(n)
		return v
	}
	ar := &cardhost.AuthRequest{
		Class:            class,
		Profile:          s.p.name,
		MTI:              mti,
		PAN:              get(2),
		Expiry:           get(14),
		ZoneKey:          s.cfg.ZoneKey,
		Currency:         get(49),
		BillingCurrency:  get(51),
		STAN:             get(11),
		TransmissionTime: get(7),
		LocalTime:        get(12),
		RRN:              get(37),
		AcquirerID:       get(32),
		TerminalID:       strings.TrimRight(get(41), " "),
		MerchantID:       strings.TrimRight(get(42), " "),
		MerchantName:     strings.TrimRight(get(43), " "),
		MCC:              get(18),
		POSEntryMode:     get(22),
		Received:         received,
	}
	if ar.MCC == "" && s.p.name == ProfileISO2003 {
		ar.MCC = get(26) // the CMF's place for the MCC
	}
	if pc := get(3); len(pc) >= 2 {
		ar.ProcessingCode = pc[:2]
	}
	var err error
	if ar.Amount, err = amount(get(4)); err != nil {
		return nil, fmt.Errorf("DE4: %w", err)
	}
	if ar.BillingAmount, err = amount(get(6)); err != nil {
		return nil, fmt.Errorf("DE6: %w", err)
	}
	if t2 := get(35); t2 != "" {
		pan, exp, ok := parseTrack2(t2)
		if !ok {
			return nil, fmt.Errorf("DE35: %w", errFormat)
		}
		if ar.PAN == "" {
			ar.PAN = pan
		}
		if ar.Expiry == "" {
			ar.Expiry, ar.Track2 = exp, true
		}
	}
	if de48 := get(48); de48 != "" {
		tags, ok := parseSubelements(de48)
		if !ok {
			return nil, fmt.Errorf("DE48: %w", errFormat)
		}
		ar.CVC2 = tags["92"]
	}
	if pb, _ := m.GetBytes(52); len(pb) > 0 {
		ar.PINBlock = append([]byte(nil), pb...)
	}
	for _, n := range s.p.originalFields {
		v := get(n)
		if v == "" {
			continue
		}
		od, ok := s.parseOriginal(v, ar.AcquirerID)
		if !ok {
			return nil, fmt.Errorf("DE%d: %w", n, errFormat)
		}
		ar.Original = od
		break
	}
	if de95 := get(95); de95 != "" {
		if len(de95) < 12 {
			return nil, fmt.Errorf("DE95: %w", errFormat)
		}
		v, err := amount(de95[:12])
		if err != nil {
			return nil, fmt.Errorf("DE95: %w", err)
		}
		ar.ReplacementAmount = &v
	}
	return ar, nil
}

func amount(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if !digits(s) || len(s) > 18 {
		return 0, errFormat
	}
	return strconv.ParseInt(s, 10, 64)
}

// parseTrack2 reads the PAN and expiry (YYMM) from track 2 equivalent data:
// PAN, separator '=' or 'D', expiry, service code, discretionary data.
func parseTrack2(t2 string) (pan, expiry string, ok bool) {
	t2 = strings.TrimPrefix(t2, ";")
	i := strings.IndexAny(t2, "=Dd")
	if i < 12 || i > 19 || len(t2) < i+5 || !digits(t2[:i]) || !digits(t2[i+1:i+5]) {
		return "", "", false
	}
	return t2[:i], t2[i+1 : i+5], true
}

// parseSubelements reads DE48 as subelements tag n2, length n2, value.
func parseSubelements(s string) (map[string]string, bool) {
	tags := make(map[string]string, 2)
	for len(s) > 0 {
		if len(s) < 4 || !digits(s[:4]) {
			return nil, false
		}
		n, _ := strconv.Atoi(s[2:4])
		if len(s) < 4+n {
			return nil, false
		}
		tags[s[:2]] = s[4 : 4+n]
		s = s[4+n:]
	}
	return tags, true
}

// parseOriginal reads the original data elements. iso87 (DE90, n42): MTI
// n4, STAN n6, transmission date-time n10, acquirer n11 (right-aligned,
// zero-filled), forwarding institution n11. iso2003 (the CMF's DE56, also
// accepted at DE90): MTI n4, STAN n12, local date-time n14, acquirer LL
// n..11; the local date-time goes to LocalTime.
func (s *Server) parseOriginal(v, acquirer string) (*cardhost.OriginalData, bool) {
	if !digits(v) {
		return nil, false
	}
	var od cardhost.OriginalData
	if s.p.cmfOriginal {
		if len(v) < 32 {
			return nil, false
		}
		od.MTI, od.STAN, od.LocalTime = v[:4], v[4:16], v[16:30]
		n, _ := strconv.Atoi(v[30:32])
		if len(v) != 32+n {
			return nil, false
		}
		od.AcquirerID = v[32:]
		return &od, true
	}
	if len(v) != 42 {
		return nil, false
	}
	od.MTI, od.STAN, od.TransmissionTime = v[:4], v[4:10], v[10:20]
	// DE32 is LLVAR, DE90's acquirer zero-filled n11: give back DE32's
	// spelling when they are the same number.
	od.AcquirerID = strings.TrimLeft(v[20:31], "0")
	if strings.TrimLeft(acquirer, "0") == od.AcquirerID {
		od.AcquirerID = acquirer
	}
	return &od, true
}

// answer packs the answer to an authorisation-class request.
func (s *Server) answer(req *iso8583.Message, mti string, ar *cardhost.AuthRequest, dec cardhost.Decision) outcome {
	resp, code, err := s.baseAnswer(req, mti, dec.Reason)
	if err != nil {
		return s.errorAnswer(nil, mti, ar.STAN, cardhost.SystemError)
	}
	if dec.Reason == cardhost.Approved {
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
		if err := resp.Field(54, additionalAmount(ccy, dec.Available)); err != nil {
			return s.errorAnswer(nil, mti, ar.STAN, cardhost.SystemError)
		}
	}
	return s.pack(resp, code)
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
