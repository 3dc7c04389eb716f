package loadtest

import (
	"encoding/json"
	"fmt"
	"os"
)

// Card kinds in a card set: what the issuer is expected to answer.
const (
	KindOK     = "ok"     // active, funded: approved
	KindPoor   = "poor"   // active, no funds: declined for funds
	KindLocked = "locked" // locked: declined
	// KindExpired is an active card whose expiry has passed: declined
	// (expired card) without counting a wrong verification.
	KindExpired = "expired"
)

// Card is one test card of a card set file. Test data only: a card set
// holds PANs and CVC2s in clear, so it must never describe real cards.
type Card struct {
	PAN    string `json:"pan"`
	Expiry string `json:"expiry"` // YYMM
	CVC2   string `json:"cvc2"`
	Kind   string `json:"kind"` // ok, poor, locked or expired
}

// LoadCards reads a card set: a JSON array of cards. A card without a kind
// is "ok".
func LoadCards(path string) ([]Card, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load cards: %w", err)
	}
	var cards []Card
	if err := json.Unmarshal(b, &cards); err != nil {
		return nil, fmt.Errorf("load cards %s: %w", path, err)
	}
	for i := range cards {
		if cards[i].Kind == "" {
			cards[i].Kind = KindOK
		}
		switch cards[i].Kind {
		case KindOK, KindPoor, KindLocked, KindExpired:
		default:
			return nil, fmt.Errorf("load cards %s: card %d: kind %q (want ok, poor, locked or expired)", path, i, cards[i].Kind)
		}
		if cards[i].PAN == "" {
			return nil, fmt.Errorf("load cards %s: card %d: no pan", path, i)
		}
	}
	return cards, nil
}

// WriteCards writes a card set readable by LoadCards, readable by its owner
// only.
func WriteCards(path string, cards []Card) error {
	b, err := json.Marshal(cards)
	if err != nil {
		return fmt.Errorf("write cards: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write cards: %w", err)
	}
	return nil
}
