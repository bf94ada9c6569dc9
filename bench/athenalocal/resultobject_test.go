package athenalocal_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/ddbrewind/rewind/query"
)

// forbidden is a result object getter whose GetObject AWS refuses.
type forbidden struct{}

func (forbidden) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}
}

// cutShort reads the result object but loses the connection after n
// bytes of it.
type cutShort struct {
	c *s3.Client
	n int64
}

func (g cutShort) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := g.c.GetObject(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	out.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(out.Body, g.n), errReader{}), out.Body}
	return out, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// TestAthenaResultObject: a many-page answer read from the result object
// Athena wrote gives the bytes paging GetQueryResults gives (and the
// local index's), in one page and one GET; a missing or forbidden object,
// or one cut short, falls back to GetQueryResults with a warning and the
// same bytes.
func TestAthenaResultObject(t *testing.T) {
	st := newStack(t, 46, 1500)
	const pageSize = 3
	st.ath.PageSize = pageSize
	// Through the CLI: the object read, or the warning, on stderr; the
	// same stdout.
	args := []string{"query", "--store", st.store, "--ttl", "exclude"}
	code, local, errs := st.run(t, args...)
	if code != 0 || local == "" {
		t.Fatalf("query local: exit %d\n%s", code, errs)
	}
	args = append(args, "--engine", "athena", "--athena-poll", "5ms")
	code, out, errs := st.run(t, args...)
	if code != 0 || out != local || !strings.Contains(errs, "row(s) of the result object s3://"+resultBucket+"/rewind/") {
		t.Fatalf("query from the result object: exit %d, same bytes %v\n%s", code, out == local, errs)
	}
	st.ath.NoResultObject = true
	code, out, errs = st.run(t, args...)
	if code != 0 || out != local || !strings.Contains(errs, "warning: athena: query") || !strings.Contains(errs, "s3:GetObject") {
		t.Fatalf("query without a result object: exit %d, same bytes %v\n%s", code, out == local, errs)
	}
	st.ath.NoResultObject = false

	ctx := context.Background()
	s, o := st.athenaSetup(t)
	q := query.Query{TTL: query.TTLExclude}
	var want bytes.Buffer
	if _, err := query.KeySet(ctx, s, q, &want, query.KeySetOptions{}); err != nil {
		t.Fatal(err)
	}
	run := func(name string, g query.ResultObjectGetter) query.AthenaResult {
		t.Helper()
		var got bytes.Buffer
		res, err := query.AthenaKeySet(ctx, st.athena, q, o, query.AthenaRunOptions{Poll: 5 * time.Millisecond, Results: g}, &got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%s: the key set differs from the local one (%d rows, %d from the object, %d pages)\nathena\n%s\nlocal\n%s", name, res.Rows, res.ObjectRows, res.Pages, got.Bytes(), want.Bytes())
		}
		return res
	}
	paged := run("paged", nil)
	if paged.Rows < 150 || paged.Pages < 50 || paged.ObjectRows != 0 {
		t.Fatalf("paged: %d rows in %d pages, %d from the object: want a many-page answer", paged.Rows, paged.Pages, paged.ObjectRows)
	}
	obj := run("object", st.s3c)
	if obj.Pages != 1 || obj.ObjectRows != obj.Rows-(pageSize-1) || obj.Rows != paged.Rows || len(obj.Warnings) != 0 ||
		!strings.HasPrefix(obj.OutputLocation, "s3://"+resultBucket+"/rewind/") {
		t.Fatalf("object: %d rows (%d from the object %s) in %d pages, warnings %q: want the first page's rows (after the header), then the object's", obj.Rows, obj.ObjectRows, obj.OutputLocation, obj.Pages, obj.Warnings)
	}
	for _, c := range []struct {
		name string
		g    query.ResultObjectGetter
		msg  string
	}{
		{"forbidden", forbidden{}, "AccessDenied"},
		{"cut short", cutShort{st.s3c, 8_000}, "connection reset"},
	} {
		res := run(c.name, c.g)
		if res.Pages != paged.Pages || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], c.msg) || !strings.Contains(res.Warnings[0], "GetQueryResults") {
			t.Fatalf("%s: %d pages (paged: %d), %d rows from the object, warnings %q", c.name, res.Pages, paged.Pages, res.ObjectRows, res.Warnings)
		}
		if c.name == "cut short" && (res.ObjectRows == 0 || res.ObjectRows >= res.Rows) {
			t.Fatalf("cut short: %d of %d rows from the object: want some", res.ObjectRows, res.Rows)
		}
	}
	st.ath.NoResultObject = true
	res := run("missing", st.s3c)
	if res.Pages != paged.Pages || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "NoSuchKey") {
		t.Fatalf("missing: %d pages, warnings %q", res.Pages, res.Warnings)
	}

}
