// Package guard is the application side of rewind's read-only mode: the
// small piece a service embeds so that, while an incident is being
// repaired, writes by read-only tenants are answered with 503 instead of
// reaching DynamoDB.
//
// New returns a Guard over the SSM StringList parameter that `rewind
// readonly on|off` maintains (default "read-only-customers": tenant ids,
// "all", or the empty-list placeholder "none"); NewFromSource takes any
// Source, such as AgentSource, which reads the list from an AppConfig
// feature flag through the AppConfig Agent (`rewind readonly --flags
// appconfig:APP/ENV/PROFILE`), or SessionSource, which polls AppConfig's
// data plane (appconfigdata sessions) itself. Guard.IsReadOnly answers from a cache
// refreshed about every TTL (default 10 s, jittered by +-20 %), and
// Guard.Middleware wraps an http.Handler:
//
//	g, err := guard.New(ssm.NewFromConfig(cfg), guard.Config{})
//	...
//	http.ListenAndServe(addr, g.Middleware(tenantFromRequest, mux))
//
// # Load on SSM, jitter and throttling
//
// Every guard process makes one GetParameter per refresh: N processes at
// TTL t cost N/t transactions per second, out of Parameter Store's
// default throughput of 40 TPS per account and region, which GetParameter
// shares with GetParameters and PutParameter (300 processes at 10 s are 30
// TPS). Past it SSM answers ThrottlingException ("Rate exceeded"). The
// refresh is jittered (Config.Jitter, +-20 %) so that processes started
// together do not read in lock step. On a throttled read the guard backs
// off: the next read waits TTL x 2^n (n consecutive throttled reads),
// capped at Config.MaxBackoff (default 5 min), jittered too, and it keeps
// the last known list meanwhile; the first good read resets it. Beyond a
// few hundred processes use a Source that does not call SSM per process,
// such as AgentSource (the AppConfig Agent polls once per host), or turn
// on Parameter Store's higher throughput (paid).
//
// # When the list cannot be read
//
// The guard keeps serving the last value it read, however old: it never
// expires a known list after TTL, it only tries to refresh it (once per
// TTL, or per backoff step when throttled). A missing parameter counts as
// an empty list, not as an error. When it has never read a value (SSM
// down at start-up, ssm:GetParameter not granted, throttled at start-up)
// it answers Config.FailClosed, false by default: fail open, writes go
// through.
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
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
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
	DefaultJitter       = 0.2
	DefaultMaxBackoff   = 5 * time.Minute
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

// Source reads the read-only list once. Implementations: the SSM
// parameter (New), AgentSource (an AppConfig feature flag through the
// AppConfig Agent).
type Source interface {
	// Read returns the tenant ids, sorted and unique (All among them
	// means every tenant). ctx carries the fetch deadline.
	Read(ctx context.Context) ([]string, error)
	// Describe names the source for logs and errors.
	Describe() string
}

// ParameterGetter is what the guard needs of SSM.
type ParameterGetter interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var _ ParameterGetter = (*ssm.Client)(nil)

// Config configures a Guard. The zero value is usable.
type Config struct {
	// Parameter is the SSM parameter name (default "read-only-customers").
	Parameter string
	// TTL is how long a value read is used before it is read again, and
	// how long after a failed (not throttled) read the next one is tried
	// (default 10 s), each wait jittered by Jitter. Freezing takes effect
	// within TTL x (1 + Jitter).
	TTL time.Duration
	// FetchTimeout bounds one GetParameter, retries included (default 2 s).
	FetchTimeout time.Duration
	// RetryAfter is the Retry-After of the 503 (default 30 s; whole
	// seconds, rounded up).
	RetryAfter time.Duration
	// Jitter spreads each wait before the next read by up to +-Jitter of
	// it (default 0.2: +-20 %; negative: no jitter; must be below 1).
	Jitter float64
	// MaxBackoff caps the wait after throttled reads (default 5 min).
	MaxBackoff time.Duration
	// FailClosed makes a guard that has never read the list treat every
	// tenant as read-only (default false: fail open; see the package doc).
	FailClosed bool
	// Logger gets a warning per failed read (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now); for tests.
	Now func() time.Time
	// Rand returns a number in [0, 1) for the jitter (default
	// math/rand/v2.Float64); for tests.
	Rand func() float64
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
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
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
	case c.Jitter >= 1:
		return fmt.Errorf("guard: Jitter %v is not below 1 (it is a fraction of the wait: 0.2 is +-20 %%)", c.Jitter)
	case c.MaxBackoff < 0:
		return fmt.Errorf("guard: MaxBackoff %v is negative", c.MaxBackoff)
	}
	return nil
}

// Guard answers whether a tenant is read-only. It is safe for concurrent
// use.
type Guard struct {
	src    Source
	cfg    Config
	flight singleflight.Group

	mu        sync.Mutex
	known     bool
	ids       []string  // sorted
	next      time.Time // when to read again
	lastErr   error     // of the latest read, nil after a success
	throttled int       // consecutive throttled reads
}

// New returns a Guard reading the SSM parameter cfg.Parameter through
// client.
func New(client ParameterGetter, cfg Config) (*Guard, error) {
	cfg.EnsureDefaults()
	return NewFromSource(&ssmSource{client: client, name: cfg.Parameter}, cfg)
}

// NewFromSource returns a Guard reading src (cfg.Parameter is unused).
func NewFromSource(src Source, cfg Config) (*Guard, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Guard{src: src, cfg: cfg}, nil
}

// ssmSource reads the SSM StringList parameter.
type ssmSource struct {
	client ParameterGetter
	name   string
}

func (s *ssmSource) Describe() string { return "SSM parameter " + s.name }

func (s *ssmSource) Read(ctx context.Context) ([]string, error) {
	out, err := s.client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(s.name)})
	var nf *types.ParameterNotFound
	switch {
	case errors.As(err, &nf):
		return nil, nil // never written: nobody is read-only
	case err != nil:
		return nil, fmt.Errorf("read SSM parameter %s: %w", s.name, err)
	}
	return parse(aws.ToString(out.Parameter.Value)), nil
}

// throttles is the SDK's own classification of throttling errors
// (ThrottlingException, TooManyRequestsException, HTTP 429 and the like).
var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// IsThrottle reports whether err is a service's throttling answer.
func IsThrottle(err error) bool {
	if err == nil {
		return false
	}
	var se interface{ HTTPStatusCode() int }
	if errors.As(err, &se) && se.HTTPStatusCode() == http.StatusTooManyRequests {
		return true
	}
	return throttles.IsErrorThrottle(err) == aws.TrueTernary
}

// jittered spreads d by up to +-cfg.Jitter.
func (g *Guard) jittered(d time.Duration) time.Duration {
	if g.cfg.Jitter <= 0 {
		return d
	}
	f := 1 + g.cfg.Jitter*(2*g.cfg.Rand()-1)
	return time.Duration(float64(d) * f)
}

// backoff is the wait after the n-th consecutive throttled read (n >= 1):
// base x 2^n, capped at MaxBackoff.
func (g *Guard) backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < g.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, g.cfg.MaxBackoff)
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

// list returns the cached list, reading the source when it is due.
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
	ids, err := g.src.Read(ctx)
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.lastErr = err
		wait := g.cfg.TTL
		if !g.known {
			wait = min(g.cfg.TTL, retryUnknownAfter)
		}
		throttled := IsThrottle(err)
		if throttled {
			g.throttled++
			wait = g.backoff(wait, g.throttled)
		} else {
			g.throttled = 0
		}
		wait = g.jittered(wait)
		g.next = now.Add(wait)
		if g.known {
			g.cfg.Logger.Warn("read-only guard: cannot read the list; using the last known value", "source", g.src.Describe(), "tenants", strings.Join(g.ids, ","), "throttled", throttled, "nextRead", wait, "err", err)
		} else {
			g.cfg.Logger.Warn("read-only guard: cannot read the list and no value is known", "source", g.src.Describe(), "failClosed", g.cfg.FailClosed, "throttled", throttled, "nextRead", wait, "err", err)
		}
		return err
	}
	g.known, g.ids, g.lastErr, g.throttled, g.next = true, ids, nil, 0, now.Add(g.jittered(g.cfg.TTL))
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
