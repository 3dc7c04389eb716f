package cardhost

import "context"

// RunCardJob runs one card job as CreateVirtualCardAsync's goroutine does.
func (h *Host) RunCardJob(ctx context.Context, id, userID, accountID int64, actor Actor) {
	h.runCardJob(ctx, id, userID, accountID, actor)
}
