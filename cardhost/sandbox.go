package cardhost

import "context"

// Sandbox reports whether a program accepts simulated messages (its
// programs.sandbox flag; the demo's program is one).
func (h *Host) Sandbox(ctx context.Context, programID int64) (bool, error) {
	var ok bool
	err := h.pool.QueryRow(ctx, `SELECT sandbox FROM programs WHERE id = $1`, programID).Scan(&ok)
	return ok, dbErr("program sandbox", err)
}
