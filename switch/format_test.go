package authswitch

import (
	"fmt"
	"math"
	"testing"
)

// TestAdditionalAmountIsFmts: DE54 built by hand reads exactly as the
// fmt verbs it replaced, on the usual shape and off it, with the amount
// clamped to 12 digits (issue 15).
func TestAdditionalAmountIsFmts(t *testing.T) {
	ref := func(ccy string, v int64) string {
		sign := "C"
		if v < 0 {
			sign, v = "D", -v
		}
		v = min(v, 999_999_999_999)
		return fmt.Sprintf("0002%3.3s%s%012d", ccy, sign, v)
	}
	for _, ccy := range []string{"978", "840", "", "97", "9781", "€", "ab€"} {
		for _, v := range []int64{0, 1, -1, 42, -4200, 999_999_999_999, -999_999_999_999, 1_000_000_000_000, -1_000_000_000_000, math.MaxInt64, math.MinInt64 + 1} {
			if got, want := additionalAmount(ccy, v), ref(ccy, v); got != want {
				t.Errorf("additionalAmount(%q, %d) = %q, want %q", ccy, v, got, want)
			}
		}
	}
	// The most negative amount is clamped before it is negated.
	if got := additionalAmount("978", math.MinInt64); got != "0002978D999999999999" {
		t.Errorf("additionalAmount(MinInt64) = %q", got)
	}
}
