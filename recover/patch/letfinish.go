package patch

import (
	"context"
	"time"
)

// letFinish returns a context that is not cancelled with ctx, but grace
// after it is: work already started when the run is interrupted gets
// grace to finish, and none is bounded by grace while the run goes on
// (each AWS call has deadlines of its own).
func letFinish(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(lctx, func() { t.Stop() })
	})
	return lctx, func() {
		stop()
		cancel()
	}
}
