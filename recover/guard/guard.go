// Package guard is the application side of rewind's read-only mode: the
// small piece a service embeds so that, while an incident is being
// repaired, writes by read-only tenants are answered with 503 instead of
// reaching DynamoDB.
//
// New returns a Guard over the SSM StringList parameter that `rewind
// readonly on|off` maintains (default "read-only-customers": tenant ids,
// "all", or the empty-list placeholder "none"). Guard.IsReadOnly answers
// from a cache refreshed at most every TTL (default 10 s), and
// Guard.Middleware wraps an http.Handler:
//
//	g, err := guard.New(ssm.NewFromConfig(cfg), guard.Config{})
//	...
//	http.ListenAndServe(addr, g.Middleware(tenantFromRequest, mux))
//
// # When SSM cannot be read
//
// The guard keeps serving the last value it read, however old, and tries
// SSM again once per TTL; a missing parameter counts as an empty list, not
// as an error. When it has never read a value (SSM down at start-up, or
// ssm:GetParameter not granted) it answers Config.FailClosed, false by
// default: fail open, writes go through.
//
// Fail open is the default because the guard is the soft layer. Failing
// closed would turn an SSM outage, a throttled GetParameter or a missing
// IAM permission at deploy time into a write outage for every tenant, on
// days with no incident at all, which is far likelier than an SSM outage
// during a freeze. During a freeze the IAM layer (the DenyWrite policy
// attached by `rewind readonly on --roles`) still stops the writes the
// guard lets through; they fail with AccessDenied instead of a clean 503.
// Set FailClosed for a service where a write during a freeze is worse than
// refusing writes while the flag cannot be read.
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"golang.org/x/sync/singleflight"
)

// Defaults, and the values shared with `rewind readonly`.
const (
	DefaultParameter    = "read-only-customers"
	DefaultTTL          = 10 * time.Second
	DefaultFetchTimeout = 2 * time.Second
	DefaultRetryAfter   = 30 * time.Second
	// All in the list makes every tenant read-only.
	All = "all"
	// Placeholder is the stored value of an empty list.
	Placeholder = "none"
	// Body is the 503 response body.
	Body = "Service is currently in read-only mode"
)

// retryUnknownAfter is how soon a guard that has never read the list tries
// again after a failure (a guard with a value waits TTL).
const retryUnknownAfter = time.Second

// ErrUnavailable is returned (wrapped) by IsReadOnly when the list has
// never been read and cannot be read now.
var ErrUnavailable = errors.New("read-only list unavailable")

// ParameterGetter is what the guard needs of SSM.
type ParameterGetter interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var _ ParameterGetter = (*ssm.Client)(nil)

// Config configures a Guard. The zero value is usable.
type Config struct {
	// Parameter is the SSM parameter name (default "read-only-customers").
	Parameter string
	// TTL is how long a value read from SSM is used before it is read
	// again, and how long after a failed read the next one is tried
	// (default 10 s). Freezing takes effect within TTL.
	TTL time.Duration
	// FetchTimeout bounds one GetParameter, retries included (default 2 s).
	FetchTimeout time.Duration
	// RetryAfter is the Retry-After of the 503 (default 30 s; whole
	// seconds, rounded up).
	RetryAfter time.Duration
	// FailClosed makes a guard that has never read the list treat every
	// tenant as read-only (default false: fail open; see the package doc).
	FailClosed bool
	// Logger gets a warning per failed read (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now); for tests.
	Now func() time.Time
}

// EnsureDefaults fills in zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Parameter == "" {
		c.Parameter = DefaultParameter
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.TTL < 0:
		return fmt.Errorf("guard: TTL %v is negative", c.TTL)
	case c.FetchTimeout < 0:
		return fmt.Errorf("guard: FetchTimeout %v is negative", c.FetchTimeout)
	case c.RetryAfter < 0:
		return fmt.Errorf("guard: RetryAfter %v is negative", c.RetryAfter)
	}
	return nil
}

// Guard answers whether a tenant is read-only. It is safe for concurrent
// use.
type Guard struct {
	client ParameterGetter
	cfg    Config
	flight singleflight.Group

	mu      sync.Mutex
	known   bool
	ids     []string  // sorted
	next    time.Time // when to read SSM again
	lastErr error     // of the latest read, nil after a success
}

// New returns a Guard reading cfg.Parameter through client.
func New(client ParameterGetter, cfg Config) (*Guard, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Guard{client: client, cfg: cfg}, nil
}

// IsReadOnly reports whether tenant is read-only: listed, or the list
// holds "all". An empty tenant is read-only only under "all".
//
// The error is non-nil only when the list has never been read and cannot
// be read now (it wraps ErrUnavailable); the bool is then the configured
// fail mode (Config.FailClosed), so callers may act on it as is. A failed
// read with an older value at hand is logged and the older value used.
func (g *Guard) IsReadOnly(ctx context.Context, tenant string) (bool, error) {
	ids, err := g.list(ctx)
	if err != nil {
		return g.cfg.FailClosed, err
	}
	return slices.Contains(ids, All) || (tenant != "" && slices.Contains(ids, tenant)), nil
}

// list returns the cached list, reading SSM when it is due.
func (g *Guard) list(ctx context.Context) ([]string, error) {
	g.mu.Lock()
	due := !g.cfg.Now().Before(g.next)
	known, ids, lastErr := g.known, g.ids, g.lastErr
	g.mu.Unlock()
	if !due {
		if !known {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, lastErr)
		}
		return ids, nil
	}
	// One read at a time per guard; concurrent callers share its result.
	// It runs detached from the caller's cancellation so that one
	// cancelled request does not fail the read for the others.
	ch := g.flight.DoChan("read", func() (any, error) {
		return nil, g.refresh(context.WithoutCancel(ctx))
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.known {
		err := g.lastErr
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return g.ids, nil
}

func (g *Guard) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.FetchTimeout)
	defer cancel()
	out, err := g.client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(g.cfg.Parameter)})
	var nf *types.ParameterNotFound
	var ids []string
	switch {
	case errors.As(err, &nf):
		err = nil // never written: nobody is read-only
	case err == nil:
		ids = parse(aws.ToString(out.Parameter.Value))
	}
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("read SSM parameter %s: %w", g.cfg.Parameter, err)
		g.lastErr = err
		if g.known {
			g.next = now.Add(g.cfg.TTL)
			g.cfg.Logger.Warn("read-only guard: cannot read the list; using the last known value", "parameter", g.cfg.Parameter, "tenants", strings.Join(g.ids, ","), "err", err)
		} else {
			g.next = now.Add(min(g.cfg.TTL, retryUnknownAfter))
			g.cfg.Logger.Warn("read-only guard: cannot read the list and no value is known", "parameter", g.cfg.Parameter, "failClosed", g.cfg.FailClosed, "err", err)
		}
		return err
	}
	g.known, g.ids, g.lastErr, g.next = true, ids, nil, now.Add(g.cfg.TTL)
	return nil
}

// parse reads a StringList value as `rewind readonly` writes it.
func parse(v string) []string {
	var ids []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" && s != Placeholder {
			ids = append(ids, s)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// isWrite reports whether a request may write: anything but GET, HEAD and
// OPTIONS.
func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// Middleware answers writes by read-only tenants with 503, Retry-After and
// Body, and passes everything else to next. tenantOf names the request's
// tenant ("" when it has none). When the list is unavailable the fail mode
// decides (see IsReadOnly).
func (g *Guard) Middleware(tenantOf func(*http.Request) string, next http.Handler) http.Handler {
	retryAfter := strconv.FormatInt(int64((g.cfg.RetryAfter+time.Second-1)/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isWrite(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		ro, err := g.IsReadOnly(r.Context(), tenantOf(r))
		if err != nil {
			g.cfg.Logger.Debug("read-only guard: deciding by fail mode", "failClosed", g.cfg.FailClosed, "err", err)
		}
		if !ro {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Retry-After", retryAfter)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(Body)) //nolint:errcheck // the client went away
	})
}
