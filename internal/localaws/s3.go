package localaws

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an in-memory S3-compatible server (gofakes3) running in this
// process and listening on 127.0.0.1. Clients must use path-style
// addressing (NewS3Client does).
//
// Uploads go through a shim (see decodeUploads) that decodes aws-chunked
// bodies and checks x-amz-checksum-* values, which gofakes3 1.2.0 does
// not: it would store the chunk framing as the object's content.
type S3 struct {
	// Endpoint is the URL to send requests to: http://127.0.0.1:PORT, or
	// https:// for StartS3TLS.
	Endpoint string
	// CAFile is, for StartS3TLS, a PEM file holding the certificate the
	// server presents; give it to other processes as AWS_CA_BUNDLE. Empty
	// for plain HTTP.
	CAFile string

	roots     *x509.CertPool
	srv       *http.Server
	done      chan struct{}
	serveErr  error
	closeOnce sync.Once
	closeErr  error
}

// StartS3 starts an in-memory S3 server on http://127.0.0.1 and a port the
// kernel picks. Buckets must be created before use, as on AWS. The caller
// must Close it.
//
// Over plain HTTP the SDK sends checksums in headers, which needs a
// seekable body: PutObject with an io.Reader that cannot seek fails in the
// client ("unseekable stream is not supported without TLS and trailing
// checksum"). Use StartS3TLS to test code that streams uploads.
func StartS3(ctx context.Context) (*S3, error) {
	return startS3(ctx, false)
}

// StartS3TLS is StartS3 serving HTTPS with a self-signed certificate for
// 127.0.0.1. Use (*S3).Config for clients in this process and CAFile
// (AWS_CA_BUNDLE) for others. Over HTTPS the SDK sends uploads aws-chunked
// with a trailing checksum, as it does against AWS.
func StartS3TLS(ctx context.Context) (*S3, error) {
	return startS3(ctx, true)
}

func startS3(ctx context.Context, useTLS bool) (*S3, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(LoopbackHost, "0"))
	if err != nil {
		return nil, fmt.Errorf("local s3: listen: %w", err)
	}
	faker := gofakes3.New(s3mem.New(),
		// Path-style only: with host buckets on, a Host such as
		// 127.0.0.1:PORT would be taken for a bucket name.
		gofakes3.WithHostBucket(false),
		gofakes3.WithLogger(gofakes3.DiscardLog()),
	)
	s := &S3{
		Endpoint: "http://" + ln.Addr().String(),
		srv: &http.Server{
			Handler:           decodeUploads(faker.Server()),
			ReadHeaderTimeout: 30 * time.Second,
		},
		done: make(chan struct{}),
	}
	if useTLS {
		cert, pemBytes, err := selfSignedCert()
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("local s3: certificate: %w", err)
		}
		dir, err := os.MkdirTemp("", "local-s3-")
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("local s3: %w", err)
		}
		s.CAFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(s.CAFile, pemBytes, 0o644); err != nil {
			ln.Close()
			return nil, fmt.Errorf("local s3: %w", err)
		}
		s.roots = x509.NewCertPool()
		s.roots.AppendCertsFromPEM(pemBytes)
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, s.srv.TLSConfig)
		s.Endpoint = "https://" + ln.Addr().String()
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
		}
	}()
	return s, nil
}

// Config returns Config(ctx, s.Endpoint, accessKeyID), with an HTTP client
// that trusts the server's certificate when it serves HTTPS.
func (s *S3) Config(ctx context.Context, accessKeyID string) (aws.Config, error) {
	cfg, err := Config(ctx, s.Endpoint, accessKeyID)
	if err != nil || s.roots == nil {
		return cfg, err
	}
	roots := s.roots
	cfg.HTTPClient = awshttp.NewBuildableClient().
		WithTimeout(30 * time.Second).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		})
	return cfg, nil
}

// Close stops the server; its data is gone.
func (s *S3) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.srv.Close()
		<-s.done
		if s.closeErr == nil {
			s.closeErr = s.serveErr
		}
		if s.CAFile != "" {
			os.RemoveAll(filepath.Dir(s.CAFile))
		}
	})
	return s.closeErr
}

// selfSignedCert returns a certificate for 127.0.0.1, valid for a day, and
// its PEM encoding.
func selfSignedCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "rewind local s3"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP(LoopbackHost)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}
