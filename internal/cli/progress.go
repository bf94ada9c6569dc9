package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/ddbrewind/rewind"
)

// The progress convention of every long command (index, restore --wait,
// export --wait, patch, verify, undo): --progress DURATION, its default
// from $REWIND_PROGRESS, else defaultProgressEvery. On a terminal stderr
// gets a bar (or, with no total yet, an updating line) redrawn as the
// library reports; otherwise a plain line every DURATION, so logs stay
// readable. --progress 0 prints nothing.
const defaultProgressEvery = 10 * time.Second

// ttyRedraw is how often a terminal's bar is redrawn at most, and how
// often the libraries are asked to report when stderr is a terminal.
const ttyRedraw = time.Second

// progressFlag is --progress: a duration, defaulted from
// $REWIND_PROGRESS.
type progressFlag struct {
	every time.Duration
	set   bool  // given on the command line
	err   error // a $REWIND_PROGRESS that is not a duration
}

func (p *progressFlag) String() string { return p.every.String() }

func (p *progressFlag) Set(s string) error {
	d, err := parseProgress(s)
	if err != nil {
		return err
	}
	p.every, p.set = d, true
	return nil
}

func parseProgress(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration such as 10s, or 0 for no progress", s)
	}
	return d, nil
}

func (p *progressFlag) register(fs *flag.FlagSet, env *Env) {
	p.every = defaultProgressEvery
	if s := env.Getenv("REWIND_PROGRESS"); s != "" {
		d, err := parseProgress(s)
		if err != nil {
			p.err = usagef("$REWIND_PROGRESS %v", err)
		} else {
			p.every = d
		}
	}
	fs.Var(p, "progress", "progress on stderr: a bar on a terminal, else a line this often; 0: none ($REWIND_PROGRESS)")
}

// check refuses a bad $REWIND_PROGRESS unless --progress overrides it.
func (p *progressFlag) check() error {
	if p.err != nil && !p.set {
		return p.err
	}
	return nil
}

// renderer draws the progress of one long command on stderr. A nil
// renderer draws nothing. Its methods are safe for concurrent use.
type renderer struct {
	w     io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time

	mu       sync.Mutex
	last     time.Time // last plain line, or the start
	drawn    bool      // a terminal line is on screen
	lastDraw time.Time
}

// newRenderer returns the renderer of --progress every on env's stderr,
// or nil when every is 0.
func newRenderer(env *Env, every time.Duration) *renderer {
	if every <= 0 {
		return nil
	}
	return &renderer{w: env.Stderr, tty: isTerminal(env.Stderr), every: every, now: time.Now, last: time.Now()}
}

// interval is how often the library should report: often on a terminal,
// whose bar moves, and every plain line otherwise.
func (r *renderer) interval() time.Duration {
	if r == nil {
		return 0
	}
	if r.tty {
		return min(r.every, ttyRedraw)
	}
	return r.every
}

// reporter is a library's progress value.
type reporter interface{ Report() rewind.Progress }

// progressTo returns a library's progress callback that draws on r, or
// nil (no callback: the library does no progress work) when r is nil.
func progressTo[P reporter](r *renderer) func(P) {
	if r == nil {
		return nil
	}
	return func(p P) { r.update(p.Report()) }
}

// update draws p.
func (r *renderer) update(p rewind.Progress) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tty {
		r.draw(p)
		return
	}
	// Plain lines: the first report once every has passed since the last
	// line (or the start), and none for the final report (the command's
	// summary follows).
	now := r.now()
	if p.Final || now.Sub(r.last) < r.every {
		return
	}
	r.last = now
	fmt.Fprintln(r.w, progressText(p))
}

// draw redraws the terminal's line: a bar when the total is known, then
// the text of a plain line, cut to the terminal's width so that the
// carriage return redraws it in place. The final report clears it (the
// command's summary follows).
//
// Drawn here rather than with a progress-bar library: the reports come at
// the library's interval with their own rate and counts, which a bar
// library would either recompute (its rate counts calls, not events) or
// draw one report late; a line of text is all that is needed.
func (r *renderer) draw(p rewind.Progress) {
	now := r.now()
	if p.Final {
		r.clear()
		return
	}
	if r.drawn && now.Sub(r.lastDraw) < minRedraw {
		return
	}
	line := progressText(p)
	if f := p.Fraction(); f >= 0 {
		line = progressBar(f, 20) + " " + line
	}
	if w := r.width(); w > 1 && len([]rune(line)) > w-1 {
		line = string([]rune(line)[:w-1])
	}
	fmt.Fprint(r.w, "\r\033[K"+line)
	r.drawn, r.lastDraw = true, now
}

// minRedraw is how often the terminal's line is redrawn at most, for
// callers that report on every item.
const minRedraw = 100 * time.Millisecond

// clear erases the terminal's line if one is drawn.
func (r *renderer) clear() {
	if r.drawn {
		fmt.Fprint(r.w, "\r\033[K")
		r.drawn = false
	}
}

// width is the terminal's width in columns, or 0 when it cannot be told.
func (r *renderer) width() int {
	f, ok := r.w.(*os.File)
	if !ok {
		return 0
	}
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
}

// progressBar draws fraction f as [=====>    ], width cells inside.
func progressBar(f float64, width int) string {
	f = min(max(f, 0), 1)
	n := int(f * float64(width))
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return "[" + bar + "]"
}

// done ends the drawing: on a terminal the line is cleared, so what
// follows starts on a clean line.
func (r *renderer) done() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tty {
		r.clear()
	}
}

// progressText is p for people: the phase, done of total and the
// percentage, the rate and the time left, then the counts and the note.
//
//	patch: 250/1000 keys (25.0%), 50 keys/s, ETA 15s, written 200, conflicts 0, failures 0
func progressText(p rewind.Progress) string {
	var parts []string
	s := fmt.Sprintf("%s: %d", p.Phase, p.Done)
	if f := p.Fraction(); f >= 0 {
		s += fmt.Sprintf("/%d %s (%.1f%%)", p.Total, p.Unit, 100*f)
	} else {
		s += " " + p.Unit
	}
	parts = append(parts, s)
	if p.Elapsed > 0 {
		unit := p.RateUnit
		if unit == "" {
			unit = p.Unit
		}
		parts = append(parts, fmt.Sprintf("%.0f %s/s", p.PerSecond(), unit))
		if eta := p.Remaining(); eta > 0 {
			parts = append(parts, "ETA "+eta.Round(time.Second).String())
		}
	}
	for _, c := range p.Counts {
		parts = append(parts, fmt.Sprintf("%s %d", c.Name, c.N))
	}
	if p.Note != "" {
		parts = append(parts, p.Note)
	}
	return strings.Join(parts, ", ")
}

// isTerminal reports whether w is a terminal, for progress bars.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress is a bar of known length on a terminal, and nothing
// otherwise: for steps whose caller counts its own work (the drill's
// writes), drawn by the renderer.
type progress struct {
	r     *renderer
	total int64
	desc  string
}

func newProgress(w io.Writer, total int, desc string) *progress {
	if !isTerminal(w) {
		return &progress{}
	}
	return &progress{r: &renderer{w: w, tty: true, every: ttyRedraw, now: time.Now}, total: int64(total), desc: strings.TrimSpace(desc)}
}

func (p *progress) set(n int) {
	p.r.update(rewind.Progress{Phase: p.desc, Unit: "items", Done: int64(n), Total: p.total})
}

func (p *progress) done() { p.r.done() }
