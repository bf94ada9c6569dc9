package pitr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Errors PlanCleanup returns (wrapped).
var (
	// ErrNotRestored: the table was not created by a restore.
	ErrNotRestored = errors.New("not a restored table")
	// ErrProduction: the table is the production table, or looks in use.
	ErrProduction = errors.New("refusing to delete the production table")
)

// CleanupPlan is a restored table that PlanCleanup found safe to delete:
// what a dry run shows and Cleanup deletes.
type CleanupPlan struct {
	Table    string `json:"table"`
	TableARN string `json:"tableArn"`
	TableID  string `json:"tableId,omitempty"`
	Status   string `json:"status"`
	// RestoredFrom and RestoreTime are the table's RestoreSummary: the
	// table it was restored from and the time it was restored to.
	RestoredFrom string     `json:"restoredFrom"`
	RestoreTime  *time.Time `json:"restoreTime,omitempty"`
	Created      *time.Time `json:"created,omitempty"`
	ItemCount    int64      `json:"itemCount"`
	SizeBytes    int64      `json:"sizeBytes"`
}

// tableNameOf takes the table name out of a table ARN
// (arn:aws:dynamodb:region:account:table/name), or returns s unchanged.
func tableNameOf(s string) string {
	if i := strings.LastIndex(s, ":table/"); strings.HasPrefix(s, "arn:") && i >= 0 {
		return strings.SplitN(s[i+len(":table/"):], "/", 2)[0]
	}
	return s
}

// describeAs describes a table given by name or ARN; an ARN must be the
// table the name resolves to (same account and region).
func (c *Client) describeAs(ctx context.Context, what, table string) (*types.TableDescription, error) {
	name := tableNameOf(table)
	out, err := c.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		return nil, wrapTableErr("cleanup: describe "+what, table, err)
	}
	if name != table && aws.ToString(out.Table.TableArn) != table {
		return nil, fmt.Errorf("cleanup: %s %s: this account and region's table %s is %s, another table; run with the credentials and region of %s", what, table, name, aws.ToString(out.Table.TableArn), table)
	}
	return out.Table, nil
}

// PlanCleanup checks that target (a name or an ARN) is a table DynamoDB
// created by a restore and not production, and returns what Cleanup would
// delete. It refuses:
//   - a table without RestoreSummary: DynamoDB sets it on every table a
//     restore created and on no other, and no API call can add it, so it
//     is the mark rewind relies on (a tag would need TagResource, which is
//     eventually consistent and another permission);
//   - production, the table given (by name or ARN) or the table target was
//     restored from, compared by ARN and table ID, not by spelling;
//   - a table with a stream or with deletion protection: a restore gives
//     neither, so someone set it up to keep the table;
//   - a table that is not ACTIVE (DynamoDB refuses to delete it while
//     CREATING anyway).
func (c *Client) PlanCleanup(ctx context.Context, target, production string) (CleanupPlan, error) {
	if target == "" {
		return CleanupPlan{}, errors.New("cleanup: no target table")
	}
	d, err := c.describeAs(ctx, "target", target)
	if err != nil {
		return CleanupPlan{}, err
	}
	name, arn, id := aws.ToString(d.TableName), aws.ToString(d.TableArn), aws.ToString(d.TableId)
	same := func(o *types.TableDescription) bool {
		return aws.ToString(o.TableArn) == arn || (id != "" && aws.ToString(o.TableId) == id)
	}
	if production != "" {
		p, err := c.describeAs(ctx, "production table", production)
		if err != nil && !errors.Is(err, ErrTableNotFound) {
			return CleanupPlan{}, err
		}
		if p != nil && same(p) {
			return CleanupPlan{}, fmt.Errorf("cleanup %s: %w: it is --table %s (%s); --target names the restored table", target, ErrProduction, production, arn)
		}
	}
	rs := d.RestoreSummary
	if rs == nil {
		return CleanupPlan{}, fmt.Errorf("cleanup %s: %w: DynamoDB reports no RestoreSummary for %s, so no restore created it, and rewind deletes only restored tables; check the name, or delete it yourself if you mean to", target, ErrNotRestored, arn)
	}
	if from := aws.ToString(rs.SourceTableArn); from == arn {
		return CleanupPlan{}, fmt.Errorf("cleanup %s: %w: it is the table it was restored from", target, ErrProduction)
	}
	if s := d.StreamSpecification; s != nil && aws.ToBool(s.StreamEnabled) {
		return CleanupPlan{}, fmt.Errorf("cleanup %s: %w: it has a stream, which a restore does not give: someone set it up to keep this table (a capture, an application); delete it yourself if you mean to", target, ErrProduction)
	}
	if aws.ToBool(d.DeletionProtectionEnabled) {
		return CleanupPlan{}, fmt.Errorf("cleanup %s: %w: it has deletion protection, which a restore does not give: someone set it up to keep this table; turn it off yourself if you mean to delete it", target, ErrProduction)
	}
	if d.TableStatus != types.TableStatusActive {
		return CleanupPlan{}, fmt.Errorf("cleanup %s: the table is %s, not ACTIVE; wait for it (aws dynamodb wait table-exists --table-name %s) and run again", target, d.TableStatus, name)
	}
	return CleanupPlan{
		Table: name, TableARN: arn, TableID: id, Status: string(d.TableStatus),
		RestoredFrom: aws.ToString(rs.SourceTableArn), RestoreTime: rs.RestoreDateTime,
		Created: d.CreationDateTime, ItemCount: aws.ToInt64(d.ItemCount), SizeBytes: aws.ToInt64(d.TableSizeBytes),
	}, nil
}

// Cleanup deletes the table p names, p from PlanCleanup. It checks again
// that the table is the one planned (same ARN and ID, still a restore).
func (c *Client) Cleanup(ctx context.Context, p CleanupPlan) error {
	now, err := c.PlanCleanup(ctx, p.TableARN, "")
	if err != nil {
		return err
	}
	if now.TableARN != p.TableARN || now.TableID != p.TableID {
		return fmt.Errorf("cleanup %s: the table changed since the dry run (ARN %s ID %s, planned %s ID %s); run the dry run again", p.Table, now.TableARN, now.TableID, p.TableARN, p.TableID)
	}
	if _, err := c.api.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(p.Table)}); err != nil {
		return wrapTableErr("cleanup: delete table", p.Table, err)
	}
	return nil
}
