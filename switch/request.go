package authswitch

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/specs"
	"github.com/moov-io/iso8583"
)

// authRequest fills the issuer's view of a request from its fields.
func (s *Server) authRequest(m *iso8583.Message, class cardhost.MessageClass, mti string, received time.Time) (*cardhost.AuthRequest, error) {
	get := func(n int) string {
		v, _ := m.GetString(n)
		return v
	}
	for _, n := range numericFields {
		if v := get(n); v != "" && !digits(v) {
			return nil, fmt.Errorf("DE%d: %w", n, errFormat)
		}
	}
	ar := &cardhost.AuthRequest{
		Class:            class,
		Profile:          s.p.name,
		MTI:              mti,
		PAN:              get(2),
		Expiry:           get(14),
		ZoneKey:          s.cfg.ZoneKey,
		STAN:             get(11),
		TransmissionTime: get(7),
		LocalTime:        get(12),
		RRN:              get(37),
		AcquirerID:       get(32),
		TerminalID:       strings.TrimRight(get(41), " "),
		MerchantID:       strings.TrimRight(get(42), " "),
		Received:         received,
	}
	if !s.acquirerOfLink(ar.AcquirerID) {
		return nil, fmt.Errorf("DE32 not an acquirer of this link: %w", errAcquirer)
	}
	if pc := get(3); len(pc) >= 2 {
		ar.ProcessingCode = pc[:2]
	}
	var err error
	if s.p.cmf {
		err = s.cmfFields(m, ar, get)
	} else {
		err = s.iso87Fields(m, ar, get)
	}
	if err != nil {
		return nil, err
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
		if !s.acquirerOfLink(od.AcquirerID) {
			// An original of another link is never matched from this one.
			return nil, fmt.Errorf("DE%d acquirer not of this link: %w", n, errAcquirer)
		}
		ar.Original = od
		break
	}
	return ar, nil
}

// iso87Fields reads what only the 1987 profile carries: DE4/DE6 amounts
// with DE49/DE51 currencies, DE18 MCC, DE22 POS entry mode, DE43 text,
// CVC2 in DE48 tag 92, DE95 replacement amounts.
func (s *Server) iso87Fields(m *iso8583.Message, ar *cardhost.AuthRequest, get func(int) string) error {
	ar.Currency, ar.BillingCurrency = get(49), get(51)
	ar.MCC, ar.POSEntryMode = get(18), get(22)
	ar.MerchantName = strings.TrimRight(get(43), " ")
	if de43 := get(43); len(de43) >= 40 {
		ar.MerchantCountry = countryCode(de43[37:40]) // DE43 positions 38-40
	}
	var err error
	if ar.Amount, err = amount(get(4)); err != nil {
		return fmt.Errorf("DE4: %w", err)
	}
	if ar.BillingAmount, err = amount(get(6)); err != nil {
		return fmt.Errorf("DE6: %w", err)
	}
	if de48 := get(48); de48 != "" {
		tags, ok := parseSubelements(de48)
		if !ok {
			return fmt.Errorf("DE48: %w", errFormat)
		}
		ar.CVC2 = tags["92"]
		// The controls CMF carries in DE24, as DE48 tags (docs/iso8583.md),
		// passed on in the CMF's terms.
		switch {
		case tags["93"] == "1":
			ar.FunctionCode = "181" // partial approval supported
		case tags["93"] == "2":
			ar.FunctionCode = "185" // partial approval supported, not for cashback
		case tags["94"] == "1":
			ar.FunctionCode = "187" // incremental authorisation
		case tags["95"] == "1" && ar.Class == cardhost.ClassCompletion:
			ar.FunctionCode = "280" // a completion that is not the last
		}
	}
	if de95 := get(95); de95 != "" {
		if len(de95) < 12 {
			return fmt.Errorf("DE95: %w", errFormat)
		}
		v, err := amount(de95[:12])
		if err != nil {
			return fmt.Errorf("DE95: %w", err)
		}
		ar.ReplacementAmount = &v
	}
	return nil
}

// cmfFields reads the jPOS CMF's own data elements: DE4/DE6 amounts with
// their currency and minor unit, DE22 POS data code, DE24 function code,
// DE26 MCC, DE30 original amounts, DE43 card acceptor sub-fields and the
// CVC2 in DE49.2.
func (s *Server) cmfFields(m *iso8583.Message, ar *cardhost.AuthRequest, get func(int) string) error {
	var err error
	if ar.Amount, ar.Currency, err = cmfAmount(get(4)); err != nil {
		return fmt.Errorf("DE4: %w", err)
	}
	if ar.BillingAmount, ar.BillingCurrency, err = cmfAmount(get(6)); err != nil {
		return fmt.Errorf("DE6: %w", err)
	}
	ar.MCC = get(26)
	if pos, _ := m.GetBytes(22); len(pos) > 0 {
		ar.POSEntryMode = hex.EncodeToString(pos)
	}
	fc := get(24)
	if fc != "" && !slices.Contains(cmfFunctionCodes[ar.Class], fc) {
		return fmt.Errorf("DE24 %s not a function code of MTI %s: %w", fc, ar.MTI, errFormat)
	}
	ar.FunctionCode = fc
	if b, _ := m.GetBytes(43); len(b) > 0 {
		sub, err := specs.ParseSubfields(b, specs.CardAcceptorTable)
		if err != nil {
			return fmt.Errorf("DE43: %w", errFormat)
		}
		ar.MerchantName = cardAcceptorName(sub)
		ar.MerchantCountry = countryCode(sub[7])
	}
	if b, _ := m.GetBytes(49); len(b) > 0 {
		sub, err := specs.ParseSubfields(b, specs.VerificationTable)
		if err != nil {
			return fmt.Errorf("DE49: %w", errFormat)
		}
		// DE49.2 is n4: a three-digit CVC2 comes left-padded with a zero.
		cvc := sub[2]
		if len(cvc) == 4 && cvc[0] == '0' {
			cvc = cvc[1:]
		}
		ar.CVC2 = cvc
	}
	if fc == "401" {
		// A partial reversal: DE4 is what remains, DE30 the original
		// amounts (the CMF's condition 08: mandatory).
		b, _ := m.GetBytes(30)
		orig, _, err := specs.AmountsOriginal(b)
		if err != nil || orig.Currency != ar.Currency || orig.MinorUnit != specs.MinorUnit(orig.Currency) {
			return fmt.Errorf("DE30: %w", errFormat)
		}
		remaining := ar.Amount
		ar.Amount, ar.ReplacementAmount = orig.Amount, &remaining
	}
	return nil
}

// cmfAmount reads an IFB_AMOUNT2003 value; its minor unit must be the
// currency's (ISO 4217), as the amount is passed on in minor units.
func cmfAmount(v string) (int64, string, error) {
	if v == "" {
		return 0, "", nil
	}
	a, err := specs.ParseAmount2003(v)
	if err != nil || a.MinorUnit != specs.MinorUnit(a.Currency) {
		return 0, "", errFormat
	}
	return a.Amount, a.Currency, nil
}

// cardAcceptorName joins DE43's name, city, region and country.
func cardAcceptorName(sub []string) string {
	name := strings.TrimRight(sub[2], " ")
	for _, i := range []int{4, 5, 7} {
		if v := strings.TrimRight(sub[i], " "); v != "" {
			name += ", " + v
		}
	}
	return strings.TrimPrefix(name, ", ")
}

// countryCode is an ISO 3166 country code (alpha-3, alpha-2 as
// Visa-style DE43 carries it in positions 39-40, or numeric n3) in upper
// case, or "" when v is not one (spend rules compare it, in any form:
// cardhost.CountryAlpha2).
func countryCode(v string) string {
	v = strings.ToUpper(strings.TrimSpace(v))
	if len(v) != 2 && len(v) != 3 {
		return ""
	}
	digits := 0
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] >= '0' && v[i] <= '9':
			digits++
		case v[i] < 'A' || v[i] > 'Z':
			return ""
		}
	}
	if digits != 0 && digits != 3 {
		return ""
	}
	return v
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
// zero-filled), forwarding institution n11. iso2003 (the CMF's DE56,
// n..41): MTI n4, STAN n12, local date-time n14 and the acquiring
// institution id in the rest (n..11, no length of its own); the local
// date-time goes to LocalTime.
func (s *Server) parseOriginal(v, acquirer string) (*cardhost.OriginalData, bool) {
	if !digits(v) {
		return nil, false
	}
	var od cardhost.OriginalData
	if s.p.cmf {
		if len(v) < 31 || len(v) > 41 {
			return nil, false
		}
		od.MTI, od.STAN, od.LocalTime, od.AcquirerID = v[:4], v[4:16], v[16:30], v[30:]
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
