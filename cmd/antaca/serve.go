package main

import "context"

func errNotYet(what string) error { return &notYetError{what} }

type notYetError struct{ what string }

func (e *notYetError) Error() string { return e.what + " is not built yet" }

func serve(ctx context.Context, cmd string, args []string) error { return errNotYet(cmd) }
