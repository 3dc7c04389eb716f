package main

import (
	"context"
	"io"
)

func verify(ctx context.Context, args []string, stdout io.Writer) error {
	return errNotYet("ledger verify")
}
