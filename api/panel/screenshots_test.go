package panel_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestPanelScreenshots writes a PNG of each page to the folder named by
// ANTACA_SCREENSHOTS (make screenshots: docs/panel/); without it, it is
// skipped.
func TestPanelScreenshots(t *testing.T) {
	dir := os.Getenv("ANTACA_SCREENSHOTS")
	if dir == "" {
		t.Skip("ANTACA_SCREENSHOTS not set (make screenshots sets it)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	for i := range 12 {
		e.authorise(int64(500 + 250*i))
	}
	ctx := tab(t)
	e.signIn(ctx, "admin")
	if _, err := e.host.Lock(e.ctx, e.card.ID, 3, actorAdmin, "pending query from the partner"); err != nil {
		t.Fatal(err)
	}
	e.authorise(900)
	// Something in the exceptions queue and the approvals: an
	// over-capture and a reload waiting for a second Admin.
	if _, err := e.host.Unlock(e.ctx, e.card.ID, actorAdmin); err != nil {
		t.Fatal(err)
	}
	e.overCapture(5000, "shot-1")
	if _, err := e.host.Lock(e.ctx, e.card.ID, 3, actorAdmin, "pending query from the partner"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.host.AdminReload(e.ctx, e.balance, 1_050_000, "admin:1", "wire from the partner", "BANK-77"); err != nil {
		t.Fatal(err)
	}
	shots := []struct{ name, path string }{
		{"summary", "/panel/summary"},
		{"customers", "/panel/customers?q=lovelace"},
		{"customer", fmt.Sprintf("/panel/customers/%d", e.user.ID)},
		{"card", fmt.Sprintf("/panel/cards/%d", e.card.ID)},
		{"live", "/panel/live"},
		{"partners", "/panel/partners"},
		{"partner", fmt.Sprintf("/panel/partners/%d", e.partner.ID)},
		{"exceptions", "/panel/exceptions"},
		{"approvals", "/panel/approvals"},
	}
	shoot := func(name string) {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range shots {
		e.open(ctx, s.path)
		shoot(s.name)
	}
	// The phone width.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	e.open(ctx, fmt.Sprintf("/panel/cards/%d", e.card.ID))
	shoot("card-phone")
	lctx := tab(t)
	e.open(lctx, "/panel/login")
	png, err := chromedp.Run(lctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "login.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
