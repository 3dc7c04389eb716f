package cardhost

import (
	"errors"
	"sync"
	"testing"

	"github.com/antaca/antaca/hsm"
)

var generatedKeys = sync.OnceValues(hsm.GenerateKeys)

// testKeys returns the host's card cryptography over a generated key set
// (made once per test binary).
func testKeys(t testing.TB) cardKeys {
	t.Helper()
	k, err := generatedKeys()
	if err != nil {
		t.Fatal(err)
	}
	return cardKeys{k}
}

// TestCardKeysVerifier checks the card-level checks Decide relies on: the
// CVC2 of the card's own generation, the PIN against the card's PVV.
func TestCardKeysVerifier(t *testing.T) {
	k := testKeys(t)
	const pan, exp = "4123456789012345", "8701"
	card := &Card{CVCGeneration: 2}
	good := k.CVC2(pan, exp, 2)
	if !k.CVC2OK(card, pan, exp, good) {
		t.Error("right cvc2 refused")
	}
	if prev := k.CVC2(pan, exp, 1); prev != good && k.CVC2OK(card, pan, exp, prev) {
		t.Error("cvc2 of the previous generation accepted")
	}
	if k.CVC2OK(card, pan, "8702", good) {
		t.Error("cvc2 accepted with another expiry")
	}
	pvv, err := k.PVV(pan, "1234")
	if err != nil {
		t.Fatal(err)
	}
	card.PVV = pvv
	right, _ := k.ZonePINBlock(ZoneISO2003, "1234", pan)
	wrong, _ := k.ZonePINBlock(ZoneISO2003, "4321", pan)
	if ok, err := k.PINOK(card, pan, ZoneISO2003, right); !ok || err != nil {
		t.Errorf("right pin: got %v, %v; want true, nil", ok, err)
	}
	if ok, err := k.PINOK(card, pan, ZoneISO2003, wrong); ok || err != nil {
		t.Errorf("wrong pin: got %v, %v; want false, nil", ok, err)
	}
	if ok, err := k.PINOK(card, pan, ZoneISO87, right); ok || !errors.Is(err, ErrPINBlock) {
		t.Errorf("other zone's block: got %v, %v; want false, ErrPINBlock", ok, err)
	}
	if ok, err := k.PINOK(card, pan, "nozone", right); ok || !errors.Is(err, ErrUnknownZoneKey) {
		t.Errorf("unknown zone: got %v, %v; want false, ErrUnknownZoneKey", ok, err)
	}
}
