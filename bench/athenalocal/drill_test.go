package athenalocal_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind/bench/athenalocal"
	"github.com/ddbrewind/rewind/indexer/compact"
	"github.com/ddbrewind/rewind/internal/cli"
	"github.com/ddbrewind/rewind/internal/drill"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// readEnvFile reads the drill's env file: export NAME=value lines, values
// bare or in single quotes (a quote inside closes, escapes and reopens
// them), as the drill writes them.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
			name, v, ok := strings.Cut(rest, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: %q: want NAME=value", path, n+1, rest)
			}
			var val strings.Builder
			for v != "" && v[0] != ' ' {
				if v[0] == '\'' {
					end := strings.IndexByte(v[1:], '\'')
					if end < 0 {
						return nil, fmt.Errorf("%s:%d: an unclosed quote", path, n+1)
					}
					val.WriteString(v[1 : 1+end])
					v = v[end+2:]
					continue
				}
				if v[0] == '\\' && len(v) > 1 {
					v = v[1:]
				}
				val.WriteByte(v[0])
				v = v[1:]
			}
			env[name], rest = val.String(), v
		}
	}
	return env, nil
}

// TestAthenaOnDrillCapture: the drill's incident (its scenario and
// traffic through DynamoDB Local, the stream handler and the local S3),
// stopped before the freeze; the drill's two impacted-keys questions give
// the same bytes through --engine athena on the stand-in as through the
// local index, before and after the capture is compacted.
func TestAthenaOnDrillCapture(t *testing.T) {
	if _, err := localaws.DynamoDBLocalDir(); err != nil {
		if os.Getenv("REWIND_REQUIRE_LOCAL_AWS") == "1" {
			t.Fatalf("DynamoDB Local is required: %v (run scripts/install-local-aws.sh)", err)
		}
		t.Skipf("DynamoDB Local not installed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	asked := false
	cfg := drill.Config{
		Tenants: 4, Affected: 2, Changes: 300,
		StopBefore: drill.StopBeforeReadonly, Progress: &progress,
		Hand: func(ctx context.Context, envFile string) error {
			e, err := readEnvFile(envFile)
			if err != nil {
				return err
			}
			askDrillQuestions(ctx, t, e)
			asked = true
			return drill.ErrSkipCheck
		},
	}
	o, err := drill.Run(ctx, cfg)
	if err != nil || !asked || o.Check != drill.CheckStopped {
		t.Fatalf("drill: %v, outcome %+v, questions asked %v\n%s", err, o, asked, progress.String())
	}
}

func askDrillQuestions(ctx context.Context, t *testing.T, e map[string]string) {
	t.Helper()
	for _, k := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "REWIND_STORE", "DRILL_TENANTS", "DRILL_DEPLOY_MINUTE"} {
		if e[k] == "" {
			t.Fatalf("the drill's env file has no %s: %v", k, e)
		}
	}
	creds := credentials.NewStaticCredentialsProvider(e["AWS_ACCESS_KEY_ID"], localaws.SecretAccessKey, "")
	s3c := s3.New(s3.Options{
		Region: localaws.Region, Credentials: creds, BaseEndpoint: aws.String(e["AWS_ENDPOINT_URL_S3"]), UsePathStyle: true,
	})
	ath, err := athenalocal.Start(s3c)
	if err != nil {
		t.Fatal(err)
	}
	defer ath.Close()
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(resultBucket)}); err != nil {
		t.Fatal(err)
	}
	ath.OutputLocation = "s3://" + resultBucket + "/rewind/"
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Run(ctx, &cli.Env{
			Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)),
			Getenv: func(string) string { return "" },
			AWS: &cli.AWS{
				Endpoints:   map[string]string{"S3": e["AWS_ENDPOINT_URL_S3"], "Athena": ath.URL, "Glue": ath.URL},
				Region:      localaws.Region,
				Credentials: creds,
				S3PathStyle: true,
			},
		}, args)
		return code, out.String(), errb.String()
	}
	// The drill's questions (internal/drill: "find the impacted keys").
	scope := []string{"--store", e["REWIND_STORE"], "--tables", "orders", "--from", e["DRILL_DEPLOY_MINUTE"], "--tenants", e["DRILL_TENANTS"]}
	questions := [][]string{
		append([]string{"query", "--match", "new.deployVersion=v42"}, scope...),
		append([]string{"query", "--actions", "REMOVE", "--ttl", "exclude"}, scope...),
	}
	capture := "s3://rewind-capture/changes"
	before := map[int]string{}
	for i, q := range questions {
		code, local, errs := run(q...)
		if code != 0 || local == "" {
			t.Fatalf("%v local: exit %d, %d bytes\n%s", q, code, len(local), errs)
		}
		before[i] = local
		code, got, errs := run(append(q, "--engine", "athena", "--athena-poll", "5ms")...)
		if code != 0 || got != local {
			t.Fatalf("%v athena: exit %d\n%s\nwant the local key set:\n%s\n%s", q, code, got, local, errs)
		}
	}
	// Compact, as the scheduled function does once the hour has closed
	// (the drill's hour is the current one: its clock is two hours on).
	sum, err := compact.Run(ctx, s3c, compact.Options{
		Bucket: "rewind-capture", Prefix: "changes", Now: func() time.Time { return time.Now().Add(2 * time.Hour) },
	})
	if err != nil || sum.Compacted == 0 || sum.ObjectsAfter >= sum.ObjectsBefore {
		t.Fatalf("compact the drill's capture: %+v, %v", sum, err)
	}
	if code, _, errs := run("index", "--source", capture, "--store", e["REWIND_STORE"]); code != 0 {
		t.Fatalf("index after compaction: exit %d\n%s", code, errs)
	}
	for i, q := range questions {
		for _, args := range [][]string{q, append(q, "--engine", "athena", "--athena-poll", "5ms")} {
			code, got, errs := run(args...)
			if code != 0 || got != before[i] {
				t.Fatalf("%v after compaction (%d objects -> %d): exit %d\n%s\nwant the key set from before:\n%s\n%s", args, sum.ObjectsBefore, sum.ObjectsAfter, code, got, before[i], errs)
			}
		}
	}
}
