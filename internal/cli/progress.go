package cli

import (
	"io"

	"github.com/schollz/progressbar/v3"
)

// progress is a progress bar on stderr when stderr is a terminal (see
// isTerminal), and nothing otherwise, so logs and CI output stay clean.
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(w io.Writer, total int, desc string) *progress {
	if !isTerminal(w) {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *progress) set(n int) {
	if p.bar != nil {
		p.bar.Set(n)
	}
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
