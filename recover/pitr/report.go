package pitr

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Lack is a setting of the source table that the restored table does not
// get. AWS documents, for RestoreTableToPointInTime ("Restoring a DynamoDB
// table to a point in time"): the new table gets the data, the global and
// local secondary indexes, the provisioned read and write capacity and the
// encryption settings, all as the source has them at the time of the
// restore; "you must manually set up" auto scaling policies, IAM policies,
// CloudWatch metrics and alarms, tags, stream settings, TTL settings and
// point-in-time recovery settings. For the patch, the restored table is a
// read-only source, which needs none of them.
type Lack struct {
	// Setting is stream, ttl, pitr or indexes (restored without them by
	// request).
	Setting string `json:"setting"`
	// Source is what the source table has, e.g. NEW_AND_OLD_IMAGES for a
	// stream, the attribute for TTL, or "not checked: <why>" when rewind
	// could not read it.
	Source string `json:"source"`
}

// NeverCopied are the settings AWS never copies to a restored table that
// rewind does not read (they live in Application Auto Scaling, IAM,
// CloudWatch and the tagging API): whether the source has them is not
// checked.
var NeverCopied = []string{"auto scaling policies", "IAM policies", "CloudWatch metrics and alarms", "tags"}

// Prices of the cost estimate: AWS's published list prices for US East
// (N. Virginia), Standard table class (aws.amazon.com/dynamodb/pricing),
// without the free tier. Other regions differ; the estimate says so.
const (
	PriceRegion = "us-east-1"
	// StorageUSDPerGBMonth is table storage, per GB-month.
	StorageUSDPerGBMonth = 0.25
	// RestoreUSDPerGB is a point-in-time restore, per GB of the source.
	RestoreUSDPerGB = 0.15
	// ReadRequestUSDPerMillion is on-demand (PAY_PER_REQUEST) reads, per
	// million read request units (one strongly consistent read of up to
	// 4 KB each: what the patch and verify read per key).
	ReadRequestUSDPerMillion = 0.125
	// RCUHourUSD and WCUHourUSD are provisioned capacity, per unit-hour.
	RCUHourUSD = 0.00013
	WCUHourUSD = 0.00065
	// hoursPerMonth converts monthly prices to hourly ones (AWS bills
	// storage by the hour: 730 hours a month).
	hoursPerMonth = 730
	gib           = 1 << 30
)

// Cost is what the restored table costs while it exists: an estimate.
type Cost struct {
	// Region is where the table is; PriceRegion is the region whose list
	// prices the estimate uses.
	Region      string `json:"region,omitempty"`
	PriceRegion string `json:"priceRegion"`
	// SizeBytes and ItemCount are the source's TableSizeBytes and
	// ItemCount (DynamoDB refreshes them about every six hours).
	SizeBytes int64 `json:"sizeBytes"`
	ItemCount int64 `json:"itemCount"`
	// BillingMode is the restored table's: PAY_PER_REQUEST or PROVISIONED.
	BillingMode          string  `json:"billingMode"`
	StorageUSDPerGBMonth float64 `json:"storageUsdPerGbMonth"`
	StorageUSDPerMonth   float64 `json:"storageUsdPerMonth"`
	StorageUSDPerDay     float64 `json:"storageUsdPerDay"`
	RestoreUSDPerGB      float64 `json:"restoreUsdPerGb"`
	// RestoreUSD is the one-off charge for the restore itself.
	RestoreUSD float64 `json:"restoreUsd"`
	// ReadRequestUSDPerMillion (PAY_PER_REQUEST): the patch's and
	// verify's reads of the restored table are billed per request.
	ReadRequestUSDPerMillion float64 `json:"readRequestUsdPerMillion,omitempty"`
	// ReadCapacity and WriteCapacity (PROVISIONED), indexes included, and
	// what they cost per hour whether used or not.
	ReadCapacity          int64   `json:"readCapacity,omitempty"`
	WriteCapacity         int64   `json:"writeCapacity,omitempty"`
	ProvisionedUSDPerHour float64 `json:"provisionedUsdPerHour,omitempty"`
	// Estimate is always true: list prices, no free tier, no discounts.
	Estimate bool `json:"estimate"`
}

// billingModeOf is a table's billing mode: without a BillingModeSummary,
// DynamoDB means PROVISIONED.
func billingModeOf(d *types.TableDescription) string {
	if d != nil && d.BillingModeSummary != nil && d.BillingModeSummary.BillingMode != "" {
		return string(d.BillingModeSummary.BillingMode)
	}
	return string(types.BillingModeProvisioned)
}

// lacks reads what src has that a restore does not carry over.
func (c *Client) lacks(ctx context.Context, src *types.TableDescription, st Status, noIndexes bool) []Lack {
	var out []Lack
	if s := src.StreamSpecification; s != nil && aws.ToBool(s.StreamEnabled) {
		out = append(out, Lack{Setting: "stream", Source: string(s.StreamViewType)})
	}
	ttl, err := c.api.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: src.TableName})
	switch {
	case err != nil:
		// Not worth refusing the restore for: say what is unknown.
		out = append(out, Lack{Setting: "ttl", Source: "not checked: " + err.Error()})
	case ttl.TimeToLiveDescription != nil:
		d := ttl.TimeToLiveDescription
		if d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling {
			out = append(out, Lack{Setting: "ttl", Source: "attribute " + aws.ToString(d.AttributeName)})
		}
	}
	if st.Enabled {
		out = append(out, Lack{Setting: "pitr", Source: fmt.Sprintf("ENABLED, %d days", st.RecoveryPeriodInDays)})
	}
	if g, l := len(src.GlobalSecondaryIndexes), len(src.LocalSecondaryIndexes); noIndexes && g+l > 0 {
		out = append(out, Lack{Setting: "indexes", Source: fmt.Sprintf("%d global, %d local secondary indexes", g, l)})
	}
	return out
}

// costOf estimates what the table restored from src costs while it exists.
func costOf(src *types.TableDescription, in RestoreInput) Cost {
	c := Cost{
		Region: in.Region, PriceRegion: PriceRegion,
		SizeBytes: aws.ToInt64(src.TableSizeBytes), ItemCount: aws.ToInt64(src.ItemCount),
		BillingMode:          billingModeOf(src),
		StorageUSDPerGBMonth: StorageUSDPerGBMonth, RestoreUSDPerGB: RestoreUSDPerGB,
		Estimate: true,
	}
	if in.BillingMode != "" {
		c.BillingMode = in.BillingMode
	}
	gb := float64(c.SizeBytes) / gib
	c.StorageUSDPerMonth = gb * StorageUSDPerGBMonth
	c.StorageUSDPerDay = c.StorageUSDPerMonth * 24 / hoursPerMonth
	c.RestoreUSD = gb * RestoreUSDPerGB
	if c.BillingMode == string(types.BillingModePayPerRequest) {
		c.ReadRequestUSDPerMillion = ReadRequestUSDPerMillion
		return c
	}
	if in.BillingMode == string(types.BillingModeProvisioned) {
		c.ReadCapacity, c.WriteCapacity = in.ReadCapacity, in.WriteCapacity
	} else if pt := src.ProvisionedThroughput; pt != nil {
		c.ReadCapacity, c.WriteCapacity = aws.ToInt64(pt.ReadCapacityUnits), aws.ToInt64(pt.WriteCapacityUnits)
	}
	if !in.NoIndexes {
		for _, g := range src.GlobalSecondaryIndexes {
			if pt := g.ProvisionedThroughput; pt != nil {
				c.ReadCapacity += aws.ToInt64(pt.ReadCapacityUnits)
				c.WriteCapacity += aws.ToInt64(pt.WriteCapacityUnits)
			}
		}
	}
	c.ProvisionedUSDPerHour = float64(c.ReadCapacity)*RCUHourUSD + float64(c.WriteCapacity)*WCUHourUSD
	return c
}

// cleanupCommands are the ways to delete the restored table once verify
// passed.
func cleanupCommands(target, source string) []string {
	return []string{
		fmt.Sprintf("rewind restore --cleanup --target %s --table %s", target, source),
		fmt.Sprintf("aws dynamodb delete-table --table-name %s", target),
	}
}
