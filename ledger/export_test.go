package ledger

// The statements of a hold batch, for the plan checks of the external
// tests.
var (
	InsertHolds         = insertHolds
	UpdateHeld          = updateHeld
	UpdateHeldIfAllowed = updateHeldIfAllowed
	CaptureHolds        = captureHolds
	ReleaseHolds        = releaseHolds
)
