package localaws_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// startOwnDynamoDB starts a DynamoDB Local for this test only, skipping
// like DynamoDBForTest when it is not installed.
func startOwnDynamoDB(t *testing.T) *localaws.DynamoDB {
	t.Helper()
	d, err := localaws.StartDynamoDB(t.Context())
	if errors.Is(err, localaws.ErrNotInstalled) && os.Getenv("REWIND_REQUIRE_LOCAL_AWS") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestStartDynamoDBListensOnLoopbackOnly(t *testing.T) {
	d := startOwnDynamoDB(t)
	t.Logf("DynamoDB Local at %s started in %v", d.Endpoint, d.StartTime.Round(time.Millisecond))

	if d.Host != "127.0.0.1" || d.Endpoint != "http://127.0.0.1:"+strconv.Itoa(d.Port) {
		t.Errorf("host %q endpoint %q, want 127.0.0.1", d.Host, d.Endpoint)
	}
	if i := slices.Index(d.Args, "-host"); i < 0 || i+1 >= len(d.Args) || d.Args[i+1] != "127.0.0.1" {
		t.Errorf("launcher not asked for -host 127.0.0.1: %q", d.Args)
	}

	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port)), time.Second)
	if err != nil {
		t.Fatalf("dial loopback: %v", err)
	}
	conn.Close()

	// Every other address of this machine must refuse the port.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	others := 0
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLoopback() || ipnet.IP.IsLinkLocalUnicast() {
			continue
		}
		others++
		addr := net.JoinHostPort(ipnet.IP.String(), strconv.Itoa(d.Port))
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("DynamoDB Local accepts connections on %s; it must listen on 127.0.0.1 only", addr)
		}
	}
	if others == 0 {
		t.Log("no non-loopback address to check against")
	}

	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port)), time.Second); err == nil {
		conn.Close()
		t.Errorf("port %d still open after Close", d.Port)
	}
}

func TestDynamoDBForTestIsolatesTests(t *testing.T) {
	a := localaws.DynamoDBForTest(t)
	b := localaws.DynamoDBForTest(t)
	if a.AccessKeyID == b.AccessKeyID {
		t.Fatalf("two envs share access key id %q", a.AccessKeyID)
	}
	ctx := t.Context()
	_, err := a.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("only-in-a"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	for _, tc := range []struct {
		env  *localaws.DynamoDBEnv
		want []string
	}{{a, []string{"only-in-a"}}, {b, nil}} {
		out, err := tc.env.DynamoDB.ListTables(ctx, &dynamodb.ListTablesInput{})
		if err != nil {
			t.Fatalf("ListTables as %s: %v", tc.env.AccessKeyID, err)
		}
		if !slices.Equal(out.TableNames, tc.want) {
			t.Errorf("ListTables as %s: %q, want %q", tc.env.AccessKeyID, out.TableNames, tc.want)
		}
	}
}

func TestUniqueAccessKeyID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k := localaws.UniqueAccessKeyID("Test/with spaces_and-punct#1")
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
		for _, r := range k {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Fatalf("key %q has %q; DynamoDB Local accepts letters and digits only", k, r)
			}
		}
	}
}

func TestStartDynamoDBReportsLauncherFailure(t *testing.T) {
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("no java on PATH")
	}
	// An installation whose launcher is not a class file: java starts and
	// fails, and the error must carry what it said.
	dir := t.TempDir()
	for _, d := range []string{"DynamoDBLocal_lib", "launcher"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"DynamoDBLocal.jar", filepath.Join("launcher", "LocalLauncher.class")} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not a class"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("REWIND_DYNAMODB_LOCAL_DIR", dir)
	_, err := localaws.StartDynamoDB(t.Context())
	if err == nil || errors.Is(err, localaws.ErrNotInstalled) || !strings.Contains(err.Error(), "exited before listening") ||
		!strings.Contains(err.Error(), "LocalLauncher") {
		t.Fatalf("got %v, want an error quoting java's output", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
}

func TestStartDynamoDBNotInstalled(t *testing.T) {
	t.Setenv("REWIND_DYNAMODB_LOCAL_DIR", t.TempDir())
	_, err := localaws.StartDynamoDB(t.Context())
	if !errors.Is(err, localaws.ErrNotInstalled) || !strings.Contains(err.Error(), "scripts/install-local-aws.sh") {
		t.Fatalf("got %v, want ErrNotInstalled saying how to install", err)
	}
}
