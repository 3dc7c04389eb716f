package cardhost

import "context"

// Sandbox reports whether a program accepts simulated messages (its
// programs.sandbox flag; the demo's program is one).
func (h *Host) Sandbox(ctx context.Context, programID int64) (bool, error) {
	ok, err := h.store.ProgramSandbox(ctx, programID)
	return ok, storeErr("program sandbox", err)
}
