package uploader

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// Reasons a request got no response, for metrics.
const (
	NoResponseReset   = "reset"   // the connection was reset or closed mid-exchange
	NoResponseTimeout = "timeout" // a deadline or timeout expired
	NoResponseNetwork = "network" // any other network failure (refused, DNS, TLS...)
)

// NoResponseReason classifies an error of a request that got no HTTP
// response, by its type (errors.Is and errors.As through the wrapping of
// net/http and net), never by its text.
func NoResponseReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return NoResponseReset
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &ne) && ne.Timeout():
		return NoResponseTimeout
	}
	return NoResponseNetwork
}
