package localaws

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxUploadBody bounds the request bodies decodeUploads buffers: S3's own
// limit for one PutObject or UploadPart is 5 GiB, far more than tests need.
const maxUploadBody = 512 << 20

// checksumHashes are the x-amz-checksum-* algorithms S3 supports.
var checksumHashes = map[string]func() hash.Hash{
	"crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"crc32c":    func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"crc64nvme": func() hash.Hash { return crc64.New(crc64NVME) },
	"sha1":      sha1.New,
	"sha256":    sha256.New,
}

// crc64NVME is the CRC-64/NVME table (polynomial 0xad93d23594c93659,
// given bit-reversed as hash/crc64 wants it).
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// decodeUploads makes S3 uploads look to gofakes3 the way it expects them:
//
//   - an aws-chunked body (Content-Encoding: aws-chunked, or an
//     x-amz-content-sha256 of STREAMING-*) is decoded, its trailing
//     headers (x-amz-checksum-*) become request headers, and the request
//     then carries the plain content with its real Content-Length.
//     gofakes3 1.2.0 decodes only STREAMING-AWS4-HMAC-SHA256-PAYLOAD and
//     stores any other chunked body, trailer included, as the object.
//   - x-amz-checksum-* values are checked against the body, and a mismatch
//     answers BadDigest as S3 does; gofakes3 ignores them.
//
// Requests without either pass through untouched.
func decodeUploads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || (r.Method != http.MethodPut && r.Method != http.MethodPost) {
			next.ServeHTTP(w, r)
			return
		}
		chunked := strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") ||
			hasToken(r.Header.Values("Content-Encoding"), "aws-chunked")
		if !chunked && !hasChecksumHeader(r.Header) {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxUploadBody+1))
		r.Body.Close()
		if err != nil {
			writeS3Error(w, http.StatusBadRequest, "IncompleteBody", "reading the request body: "+err.Error())
			return
		}
		if len(body) > maxUploadBody {
			writeS3Error(w, http.StatusBadRequest, "EntityTooLarge", "the local S3 server buffers at most 512 MiB per request")
			return
		}
		if chunked {
			content, trailers, err := decodeAWSChunked(body)
			if err != nil {
				writeS3Error(w, http.StatusBadRequest, "IncompleteBody", "aws-chunked body: "+err.Error())
				return
			}
			if dcl := r.Header.Get("X-Amz-Decoded-Content-Length"); dcl != "" && dcl != strconv.Itoa(len(content)) {
				writeS3Error(w, http.StatusBadRequest, "IncompleteBody",
					fmt.Sprintf("x-amz-decoded-content-length is %s but the chunks hold %d bytes", dcl, len(content)))
				return
			}
			for name, value := range trailers {
				if strings.HasPrefix(name, "x-amz-checksum-") {
					r.Header.Set(name, value)
				}
			}
			body = content
			r.Header.Del("X-Amz-Decoded-Content-Length")
			r.Header.Del("X-Amz-Trailer")
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			var encodings []string
			for _, v := range r.Header.Values("Content-Encoding") {
				for _, e := range strings.Split(v, ",") {
					if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
						encodings = append(encodings, e)
					}
				}
			}
			r.Header.Del("Content-Encoding")
			if len(encodings) > 0 {
				r.Header.Set("Content-Encoding", strings.Join(encodings, ","))
			}
		}
		for alg, newHash := range checksumHashes {
			want := r.Header.Get("X-Amz-Checksum-" + alg)
			if want == "" {
				continue
			}
			h := newHash()
			h.Write(body)
			if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != want {
				writeS3Error(w, http.StatusBadRequest, "BadDigest",
					fmt.Sprintf("The %s you specified did not match the calculated checksum.", strings.ToUpper(alg)))
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		next.ServeHTTP(w, r)
	})
}

func hasChecksumHeader(h http.Header) bool {
	for alg := range checksumHashes {
		if h.Get("X-Amz-Checksum-"+alg) != "" {
			return true
		}
	}
	return false
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// decodeAWSChunked decodes an aws-chunked body: chunks of
// "hex-size[;chunk-signature=...]\r\n" data "\r\n", a zero-size chunk, then
// optional trailing "name:value\r\n" lines and a final "\r\n". It returns
// the content and the trailers, names in lower case.
func decodeAWSChunked(body []byte) ([]byte, map[string]string, error) {
	br := bufio.NewReader(bytes.NewReader(body))
	var content []byte
	for {
		line, err := readCRLFLine(br)
		if err != nil {
			return nil, nil, fmt.Errorf("chunk header: %w", err)
		}
		sizeHex, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
		if err != nil || size < 0 {
			return nil, nil, fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			break
		}
		if int64(len(body)) < size {
			return nil, nil, fmt.Errorf("chunk of %d bytes is longer than the body", size)
		}
		start := len(content)
		content = append(content, make([]byte, size)...)
		if _, err := io.ReadFull(br, content[start:]); err != nil {
			return nil, nil, fmt.Errorf("chunk data: %w", err)
		}
		if crlf, err := readCRLFLine(br); err != nil || crlf != "" {
			return nil, nil, errors.New("chunk data not followed by CRLF")
		}
	}
	trailers := map[string]string{}
	for {
		line, err := readCRLFLine(br)
		if err == io.EOF || (err == nil && line == "") {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("trailer: %w", err)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, fmt.Errorf("bad trailer line %q", line)
		}
		trailers[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
	}
	return content, trailers, nil
}

// readCRLFLine reads one line ending in CRLF (or LF) and returns it without
// the line end. At the end of the input it returns io.EOF.
func readCRLFLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err == io.EOF && line == "" {
		return "", io.EOF
	}
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func writeS3Error(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	var msg bytes.Buffer
	_ = xml.EscapeText(&msg, []byte(message))
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>",
		code, msg.Bytes())
}
