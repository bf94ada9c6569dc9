package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
)

// warnStore prints what a query or stats over q should know of the store
// st: the filters' names it does not hold (warnMissing) and the capture
// failures in the window it lacks (warnCaptureGaps, also on stdout when
// jsonOut). It returns the partial error of the first that has one.
func warnStore(env *Env, name string, st *indexer.Store, q query.Query, emptyAnswer, jsonOut bool) error {
	// A non-empty answer already shows most of what FindMissing looks up:
	// a cold query need not open the time ordering's first and last files.
	missing, err := query.FindMissingAnswered(st, q, !emptyAnswer)
	if err != nil {
		return err
	}
	gaps, err := query.FindCaptureGaps(st, q)
	if err != nil {
		return err
	}
	merr := warnMissing(env, name, missing, q.From, q.To, emptyAnswer)
	if err := warnCaptureGaps(env, name, gaps, jsonOut); err != nil && merr == nil {
		merr = err
	}
	if err := warnUnindexed(env, name, st, q.Window(), emptyAnswer); err != nil && merr == nil {
		merr = err
	}
	return merr
}

// warnUnindexed prints a warning for each part of the window w that the
// store has not indexed (rewind index --from/--to indexed other windows),
// with the command that adds it. The answer leaves those parts out; when
// it is empty, that is no "nothing changed", and it returns a partial
// error (exit 3).
func warnUnindexed(env *Env, name string, st *indexer.Store, w indexer.Window, emptyAnswer bool) error {
	gaps, err := st.Unindexed(w)
	if err != nil || len(gaps) == 0 {
		return err
	}
	srcs, err := st.IndexedWindows()
	if err != nil {
		return err
	}
	micros := func(has bool, v int64) time.Time {
		if !has {
			return time.Time{}
		}
		return time.UnixMicro(v).UTC()
	}
	var names []string
	for src := range srcs {
		names = append(names, src)
	}
	slices.Sort(names)
	for _, g := range gaps {
		from, to := micros(g.HasFrom, g.From), micros(g.HasTo, g.To)
		fmt.Fprintf(env.Stderr, "%s: warning: the store has not indexed [%s, %s) of the window: the answer holds nothing of it, whatever changed there", name, openTime(from), openTime(to))
		if len(names) == 1 {
			fmt.Fprintf(env.Stderr, " (add it: rewind index --store %s --source %s", st.Dir(), names[0])
			if g.HasFrom {
				fmt.Fprintf(env.Stderr, " --from %s", openTime(from))
			}
			if g.HasTo {
				fmt.Fprintf(env.Stderr, " --to %s", openTime(to))
			}
			fmt.Fprint(env.Stderr, ")")
		}
		fmt.Fprintln(env.Stderr)
	}
	if emptyAnswer {
		return partialf("the answer is empty, and the store has not indexed all of the window (see the warnings above)")
	}
	return nil
}

// warnMissing prints, on stderr, one warning for each thing the command's
// filters name that the store does not hold, saying what it does hold. When
// the answer is empty and something named is missing, the empty answer is
// most likely a typo's: it returns a partial error (exit 3). An empty
// answer to filters that name only what the store holds is an answer (nil).
func warnMissing(env *Env, name string, m *query.Missing, from, to time.Time, emptyAnswer bool) error {
	if !m.Any() {
		return nil
	}
	for _, line := range missingLines(m, from, to) {
		fmt.Fprintf(env.Stderr, "%s: warning: %s\n", name, line)
	}
	if !emptyAnswer {
		return nil
	}
	if m.Empty {
		return partialf("the answer is empty: the store holds no events")
	}
	return partialf("the answer is empty, and the filters name what the store does not hold (see the warnings above)")
}

func missingLines(m *query.Missing, from, to time.Time) []string {
	var out []string
	if m.Empty {
		return []string{"the store holds no events (rewind index adds captured changes to it)"}
	}
	span := fmt.Sprintf("%s to %s", m.First.Format(time.RFC3339Nano), m.Last.Format(time.RFC3339Nano))
	if len(m.Tables) > 0 {
		out = append(out, fmt.Sprintf("the store holds no %s %s; the store holds %s: %s",
			plural(len(m.Tables), "table", "tables"), quoteList(m.Tables, 10), plural(len(m.StoreTables), "table", "tables"), strings.Join(capList(m.StoreTables, 20), ", ")))
	}
	for _, t := range m.Tenants {
		line := fmt.Sprintf("the store holds no events of tenant %q; it holds %d %s", t, m.StoreTenants, plural(m.StoreTenants, "tenant", "tenants"))
		if c := m.Close[t]; len(c) > 0 {
			line += ", with close names " + quoteList(c, len(c))
		} else {
			line += ", none with a close name (rewind stats --top 0 lists them)"
		}
		out = append(out, line)
	}
	if m.Window {
		out = append(out, fmt.Sprintf("the window [%s, %s) holds none of the store's events, which run from %s", openTime(from), openTime(to), span))
	}
	if m.Item {
		out = append(out, fmt.Sprintf("the store holds no change of this item in any window (its events run from %s); check the key's attribute names and types (S or N)", span))
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func quoteList(s []string, max int) string {
	q := make([]string, 0, len(s))
	for _, x := range capList(s, max) {
		if strings.HasPrefix(x, "… and ") {
			q = append(q, x)
			continue
		}
		q = append(q, strconv.Quote(x))
	}
	return strings.Join(q, ", ")
}

// capList keeps the first max of s and says how many it left out.
func capList(s []string, max int) []string {
	if len(s) <= max {
		return s
	}
	return append(s[:max:max], fmt.Sprintf("… and %d more", len(s)-max))
}

func openTime(t time.Time) string {
	if t.IsZero() {
		return "(open)"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// warnCaptureGaps prints a WARNING on stderr for each capture failure the
// store listed but does not hold in the command's window, and, when
// jsonOut is set (stdout is JSON lines), a {"kind":"warning"} line on
// stdout too; it returns a partial error (exit 3) when there is any. Key
// sets, plans and tables keep their stdout pure: consumers read them as
// they are.
func warnCaptureGaps(env *Env, name string, gaps []indexer.CaptureGap, jsonOut bool) error {
	if len(gaps) == 0 {
		return nil
	}
	for _, g := range gaps {
		span := "at an unknown time"
		if !g.From.IsZero() {
			span = fmt.Sprintf("written between %s and %s", g.From.Format(time.RFC3339), g.To.Format(time.RFC3339))
		}
		msg := fmt.Sprintf("capture failure %s (stream records %s) is not in the store: changes in that span may be missing; fix what made it fail to index and rerun rewind index --failures",
			g.Object, span)
		fmt.Fprintf(env.Stderr, "%s: WARNING: %s\n", name, msg)
		if jsonOut {
			w := struct {
				Message string    `json:"message"`
				Object  string    `json:"object"`
				From    time.Time `json:"from,omitzero"`
				To      time.Time `json:"to,omitzero"`
			}{msg, g.Object, g.From, g.To}
			if err := emitJSON(env.Stdout, "warning", w); err != nil {
				return err
			}
		}
	}
	return partialf("the window overlaps %d capture %s the store does not hold (see the warnings above)", len(gaps), plural(len(gaps), "failure", "failures"))
}
