package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"

	"github.com/shopspring/decimal"
)

// Amounts travel in JSON as decimal strings in major units with the
// currency's exponent ("12.34" EUR, "1200" JPY). Requests may also send a
// plain JSON number; either way the text is parsed as a decimal, never as a
// float64.

// amountText is an amount as the client wrote it: the JSON string's
// content or the JSON number's literal text.
type amountText string

// UnmarshalJSON keeps the literal text of a string or number.
func (a *amountText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = amountText(s)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*a = ""
		return nil
	}
	*a = amountText(b)
	return nil
}

var amountRe = regexp.MustCompile(`^[0-9]{1,19}(\.[0-9]{1,9})?$`)

// parseAmount turns a positive major-unit decimal into minor units of a
// currency with exp decimals. More decimals than the currency has, zero,
// negative or out of range amounts are refused.
func parseAmount(v amountText, exp int) (int64, error) {
	if !amountRe.MatchString(string(v)) {
		return 0, errorf(http.StatusBadRequest, CodeValidation, "amount must be a positive decimal in major units, like \"12.34\"")
	}
	d, err := decimal.NewFromString(string(v))
	if err != nil {
		return 0, errorf(http.StatusBadRequest, CodeValidation, "amount is not a decimal")
	}
	m := d.Shift(int32(exp))
	if !m.IsInteger() {
		return 0, errorf(http.StatusBadRequest, CodeValidation, "amount has more than %d decimals", exp)
	}
	if m.Sign() <= 0 {
		return 0, errorf(http.StatusBadRequest, CodeValidation, "amount must be positive")
	}
	if m.GreaterThan(decimal.NewFromInt(math.MaxInt64)) {
		return 0, errorf(http.StatusUnprocessableEntity, CodeAmountTooLarge, "amount is too large")
	}
	return m.IntPart(), nil
}

// formatAmount writes minor units as a major-unit decimal with exactly exp
// decimals.
func formatAmount(minor int64, exp int) string {
	return decimal.New(minor, int32(-exp)).StringFixed(int32(exp))
}

// exponent returns a currency's exponent, cached: exponents never change.
func (s *Server) exponent(ctx context.Context, currency string) (int, error) {
	if v, ok := s.exps.Load(currency); ok {
		return v.(int), nil
	}
	exp, err := s.host.CurrencyExponent(ctx, currency)
	if err != nil {
		return 0, fmt.Errorf("currency exponent: %w", err)
	}
	s.exps.Store(currency, exp)
	return exp, nil
}
