package drill

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/ddbrewind/rewind/internal/cli"
	"github.com/ddbrewind/rewind/internal/fakeiam"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/fakessm"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/traffic"
)

// stack is the local stand-ins one drill runs against, all on 127.0.0.1.
type stack struct {
	// endpoints by SDK service ID, as cli.AWS takes them.
	endpoints map[string]string
	key       string // access key id: DynamoDB Local's database
	off       []func()
}

// startStack starts DynamoDB Local behind the PITR front, S3 (with the
// capture bucket made later and the export bucket now), SSM and IAM/STS,
// and the clients the drill itself uses.
func (d *drill) startStack(ctx context.Context) error {
	return d.step("start stack", "DynamoDB Local and stand-ins for S3, PITR, SSM and IAM, all on 127.0.0.1", func() (string, error) {
		st := &d.stack
		ddbLocal, err := localaws.StartDynamoDB(ctx)
		if err != nil {
			return "", fmt.Errorf("%w (install it with scripts/install-local-aws.sh)", err)
		}
		st.off = append(st.off, func() { ddbLocal.Close() })
		s3srv, err := localaws.StartS3(ctx)
		if err != nil {
			return "", err
		}
		st.off = append(st.off, func() { s3srv.Close() })
		st.key = localaws.UniqueAccessKeyID("drill")
		s3cfg, err := localaws.Config(ctx, s3srv.Endpoint, st.key)
		if err != nil {
			return "", err
		}
		d.s3 = localaws.NewS3Client(s3cfg)
		front, err := fakepitr.Start(ctx, fakepitr.Config{Upstream: ddbLocal.Endpoint, CreatingFor: time.Second, S3: d.s3, LatestRestorableLag: fakepitr.NoLag})
		if err != nil {
			return "", err
		}
		st.off = append(st.off, func() { front.Close() })
		d.pitr = front
		ssmSrv, err := fakessm.Start(ctx)
		if err != nil {
			return "", err
		}
		st.off = append(st.off, func() { ssmSrv.Close() })
		iamSrv, err := fakeiam.Start(ctx)
		if err != nil {
			return "", err
		}
		st.off = append(st.off, func() { iamSrv.Close() })
		iamSrv.AddRole(appRole)

		d.db = fakepitr.DB{AccessKeyID: st.key, Region: localaws.Region}
		// The runbook's commands run in this process and get the stack's
		// configuration whole (cli.Env.AWS), the way an operator's shell
		// gets it from the env file: nothing goes through the process
		// environment.
		st.endpoints = map[string]string{
			"DynamoDB":         front.Endpoint,
			"DynamoDB Streams": ddbLocal.Endpoint,
			"S3":               s3srv.Endpoint,
			"SSM":              ssmSrv.Endpoint,
			"IAM":              iamSrv.Endpoint,
			"STS":              iamSrv.Endpoint,
			// The IAM stand-in answers DAX's DescribeClusters (no
			// clusters), which readonly on asks to warn of writes that
			// bypass IAM's DynamoDB policies.
			"DAX": iamSrv.Endpoint,
		}
		cfg, err := localaws.Config(ctx, front.Endpoint, st.key)
		if err != nil {
			return "", err
		}
		d.ddb = dynamodb.NewFromConfig(cfg)
		scfg, err := localaws.Config(ctx, ddbLocal.Endpoint, st.key)
		if err != nil {
			return "", err
		}
		d.streams = dynamodbstreams.NewFromConfig(scfg)
		mcfg, err := localaws.Config(ctx, ssmSrv.Endpoint, st.key)
		if err != nil {
			return "", err
		}
		d.ssm = ssm.NewFromConfig(mcfg)
		if d.guard, err = d.newGuard(); err != nil {
			return "", err
		}
		return fmt.Sprintf("DynamoDB Local %s (up in %s) behind PITR %s; S3 %s; SSM %s; IAM %s",
			ddbLocal.Endpoint, ddbLocal.StartTime.Round(time.Millisecond), front.Endpoint, s3srv.Endpoint, ssmSrv.Endpoint, iamSrv.Endpoint), nil
	})
}

// cliAWS is the stack's configuration for the runbook's commands, each
// endpoint through wrap when it is set (Config.Endpoint).
func (s *stack) cliAWS(wrap func(service, url string) string) *cli.AWS {
	endpoints := s.endpoints
	if wrap != nil {
		endpoints = make(map[string]string, len(s.endpoints))
		for svc, url := range s.endpoints {
			endpoints[svc] = wrap(svc, url)
		}
	}
	return &cli.AWS{
		Endpoints:   endpoints,
		Region:      localaws.Region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s.key, localaws.SecretAccessKey, "")),
		S3PathStyle: true,
	}
}

func (s *stack) stop() {
	for i := len(s.off) - 1; i >= 0; i-- {
		s.off[i]()
	}
	s.off = nil
}

// envVar is the SDK's environment variable for a service's endpoint
// (AWS_ENDPOINT_URL_<SERVICE ID, upper case, spaces as underscores>), as
// the SDK's configuration guide names them.
func envVar(service string) string {
	return "AWS_ENDPOINT_URL_" + strings.ReplaceAll(strings.ToUpper(service), " ", "_")
}

// envFile is the shell text that points rewind at the stack, with the
// incident's facts the runbook needs.
func (d *drill) envFile(facts [][2]string) string {
	var b strings.Builder
	b.WriteString("# rewind drill stack: source this file (. FILE) in the shell that runs rewind.\n")
	b.WriteString("# It lives as long as the drill that wrote it; interrupt the drill to stop it.\n")
	for _, svc := range []string{"DynamoDB", "DynamoDB Streams", "S3", "SSM", "IAM", "STS", "DAX"} {
		fmt.Fprintf(&b, "export %s=%s\n", envVar(svc), d.stack.endpoints[svc])
	}
	fmt.Fprintf(&b, "export REWIND_S3_PATH_STYLE=true\n")
	// The tenant rule of the drill's traffic, which readonly's IAM layer
	// turns into dynamodb:LeadingKeys patterns.
	fmt.Fprintf(&b, "export REWIND_TENANT_REGEX=%s\n", shellQuote(traffic.TenantRegex))
	fmt.Fprintf(&b, "export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s\n", d.stack.key, localaws.SecretAccessKey)
	fmt.Fprintf(&b, "export AWS_REGION=%s AWS_DEFAULT_REGION=%s\n", localaws.Region, localaws.Region)
	b.WriteString("export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null\n")
	b.WriteString("unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL\n")
	for _, f := range facts {
		fmt.Fprintf(&b, "export %s=%s\n", f[0], shellQuote(f[1]))
	}
	return b.String()
}

// writeFileAtomic writes data to a temporary file next to path and
// renames it into place, so a reader sees the whole file or none.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
