package streamhandler

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
)

// Images says which item images the handler keeps.
type Images string

// The image choices.
const (
	ImagesBoth Images = "both" // old and new, as the stream carries them
	ImagesNew  Images = "new"  // only the new image
	ImagesOld  Images = "old"  // only the old image
	ImagesNone Images = "none" // keys only
)

// Config configures the handler. ConfigFromEnv reads it from the Lambda
// function's environment; the variable for each field is named in its
// comment, with its default.
type Config struct {
	// AuditTable is the DynamoDB table that receives one item per change
	// event. REWIND_AUDIT_TABLE; required.
	AuditTable string
	// Bucket receives the Parquet objects. REWIND_BUCKET; required.
	Bucket string
	// Prefix is the key prefix under Bucket, without slashes at either end.
	// REWIND_PREFIX; default "changes".
	Prefix string
	// Tenant says where an item's tenant comes from: its Attribute from
	// REWIND_TENANT_ATTRIBUTE (default rewind.DefaultTenantAttribute,
	// "pk"), its Regex from REWIND_TENANT_REGEX (default none: the whole
	// value). It is rewind.TenantRule, the rule every source of events
	// applies, so a tenant has one name in the index whatever captured it.
	Tenant rewind.TenantRule
	// KeyAttributes names the source table's primary key attributes. Only
	// needed where stream records carry more attributes in Keys than the
	// primary key (DynamoDB Local does for TTL deletes on tables with
	// indexes); otherwise the handler learns them from the records.
	// REWIND_KEY_ATTRIBUTES, comma-separated; default empty.
	KeyAttributes []string
	// TTLDays is how long audit items live: the PITR window, 1 to 35 days.
	// REWIND_TTL_DAYS; default 35.
	TTLDays int
	// Images says which images to keep in the audit table and in Parquet:
	// both, new, old or none. REWIND_IMAGES; default "both".
	Images Images
	// Compression is the Parquet column codec: zstd, snappy, gzip or none.
	// REWIND_COMPRESSION; default "zstd".
	Compression string
	// AuditShards spreads one tenant-hour over this many audit partitions so
	// a busy tenant does not make a hot partition. Readers must query all
	// of them. REWIND_AUDIT_SHARDS; default 8, 1 to 256.
	AuditShards int
	// SafetyMargin is how long before the invocation deadline the handler
	// stops starting new work and reports the rest as failures.
	// REWIND_SAFETY_MARGIN; default 10s.
	SafetyMargin time.Duration
	// S3PathStyle forces path-style S3 addressing (local S3 servers).
	// REWIND_S3_PATH_STYLE; default false.
	S3PathStyle bool
}

// Defaults for Config fields.
const (
	DefaultPrefix       = "changes"
	DefaultTTLDays      = 35
	DefaultCompression  = "zstd"
	DefaultAuditShards  = 8
	DefaultSafetyMargin = 10 * time.Second
)

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Tenant.EnsureDefaults()
	if c.TTLDays == 0 {
		c.TTLDays = DefaultTTLDays
	}
	if c.Images == "" {
		c.Images = ImagesBoth
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if c.AuditShards == 0 {
		c.AuditShards = DefaultAuditShards
	}
	if c.SafetyMargin == 0 {
		c.SafetyMargin = DefaultSafetyMargin
	}
}

// Validate returns an error naming the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.AuditTable == "":
		return errors.New("config: AuditTable (REWIND_AUDIT_TABLE) is required")
	case c.Bucket == "":
		return errors.New("config: Bucket (REWIND_BUCKET) is required")
	case strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("config: Prefix (REWIND_PREFIX) %q must not start or end with /", c.Prefix)
	case c.TTLDays < 1 || c.TTLDays > 35:
		return fmt.Errorf("config: TTLDays (REWIND_TTL_DAYS) is %d; PITR keeps 1 to 35 days", c.TTLDays)
	case len(c.KeyAttributes) > 2:
		return fmt.Errorf("config: KeyAttributes (REWIND_KEY_ATTRIBUTES) names %d attributes; a primary key has one or two", len(c.KeyAttributes))
	case c.AuditShards < 1 || c.AuditShards > 256:
		return fmt.Errorf("config: AuditShards (REWIND_AUDIT_SHARDS) is %d; want 1 to 256", c.AuditShards)
	case c.SafetyMargin < 0:
		return fmt.Errorf("config: SafetyMargin (REWIND_SAFETY_MARGIN) is negative")
	}
	if err := c.Tenant.Validate(); err != nil {
		return fmt.Errorf("config: Tenant (REWIND_TENANT_ATTRIBUTE, REWIND_TENANT_REGEX): %w", err)
	}
	switch c.Images {
	case ImagesBoth, ImagesNew, ImagesOld, ImagesNone:
	default:
		return fmt.Errorf("config: Images (REWIND_IMAGES) is %q; want both, new, old or none", c.Images)
	}
	switch c.Compression {
	case "zstd", "snappy", "gzip", "none":
	default:
		return fmt.Errorf("config: Compression (REWIND_COMPRESSION) is %q; want zstd, snappy, gzip or none", c.Compression)
	}
	return nil
}

// ConfigFromEnv reads the Config from environment variables through
// getenv (os.Getenv in the Lambda), fills defaults and validates it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		AuditTable:  getenv("REWIND_AUDIT_TABLE"),
		Bucket:      getenv("REWIND_BUCKET"),
		Prefix:      getenv("REWIND_PREFIX"),
		Tenant:      rewind.TenantRule{Attribute: getenv("REWIND_TENANT_ATTRIBUTE")},
		Images:      Images(strings.ToLower(getenv("REWIND_IMAGES"))),
		Compression: strings.ToLower(getenv("REWIND_COMPRESSION")),
	}
	if s := getenv("REWIND_KEY_ATTRIBUTES"); s != "" {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				c.KeyAttributes = append(c.KeyAttributes, n)
			}
		}
	}
	if s := getenv("REWIND_TENANT_REGEX"); s != "" {
		re, err := regexp.Compile(s)
		if err != nil {
			return Config{}, fmt.Errorf("config: REWIND_TENANT_REGEX: %w", err)
		}
		c.Tenant.Regex = re
	}
	ints := []struct {
		name string
		dst  *int
	}{{"REWIND_TTL_DAYS", &c.TTLDays}, {"REWIND_AUDIT_SHARDS", &c.AuditShards}}
	for _, f := range ints {
		if s := getenv(f.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return Config{}, fmt.Errorf("config: %s=%q is not a whole number", f.name, s)
			}
			*f.dst = n
		}
	}
	if s := getenv("REWIND_SAFETY_MARGIN"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return Config{}, fmt.Errorf("config: REWIND_SAFETY_MARGIN=%q: %w", s, err)
		}
		c.SafetyMargin = d
	}
	if s := getenv("REWIND_S3_PATH_STYLE"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return Config{}, fmt.Errorf("config: REWIND_S3_PATH_STYLE=%q is not true or false", s)
		}
		c.S3PathStyle = b
	}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
