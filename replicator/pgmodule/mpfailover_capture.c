/*
 * mpfailover_capture: the capture trigger, as a PostgreSQL C function.
 *
 * NOTES: why C, and why no executor. The capture benchmark (tests/bench/) showed a generated
 * PL/pgSQL trigger costing 13-16% of the application's write throughput even at its leanest,
 * against a target of at most 10%: the PL/pgSQL call alone cost ~6%, and an SPI INSERT per row
 * still left the C version near the limit. So this function forms the log tuple itself and
 * heap-inserts it, like PgQ's logutriga. That is only correct because mpfailover.change_log has
 * no constraints or triggers. Its indexes (catalog 0009: one btree on txid, so that a window read
 * and a trim cost what they return rather than a scan of the whole backlog) are maintained here
 * with index_insert, as CatalogIndexInsert does; only plain-column, non-unique, non-partial
 * indexes can be, so any other kind is refused rather than silently missing entries. No
 * permission checks apply: the function is
 * created by init-db's superuser and writes only the replicator's own table, so the
 * application's login needs no rights on schema mpfailover.
 *
 * Trigger arguments (written by `mpfailover init-db`, which also records them in
 * mpfailover.replicated_table):
 *   table_id, origin node, number of key columns K, K key column names, then the image columns.
 * Columns are looked up by name on every call, so a column dropped from the table without
 * re-running init-db is an error naming it rather than a shifted, silently wrong image.
 *
 * Text form. DateStyle, IntervalStyle and extra_float_digits are pinned while values are
 * rendered so the text parses back exactly on the peer whatever the writing session set; they
 * are restored before returning, also on error.
 *
 * Ordering. The change number comes from the sequence after any row-lock or FK wait
 * this row caused (AFTER ROW triggers named "mpfailover_capture" fire after the RI triggers), so
 * it is later than every change number of a transaction this one waited for (docs/design.md §1).
 *
 * Wake-up at commit (docs/design.md §10). A transaction that captured a change sends one datagram,
 * after its commit is visible, to the abstract Unix socket "mpfailover-wake/<system
 * identifier>/<database oid>" in the backend's network namespace, where the shipper listens: it
 * then reads the log at once instead of finding the change by polling. Not NOTIFY: NOTIFY
 * serialises committing transactions on a global lock (it cost ~12% of capture throughput); a
 * non-blocking sendto costs a system call, and nothing when it fails (no shipper, buffer full).
 * The datagram is only a hint: it carries nothing, and a lost one costs latency, never a change
 * (the shipper still reads the log on a timer). Commit callbacks run after the transaction is
 * visible to new snapshots (CommitTransaction: ProcArrayEndTransaction, then CallXactCallbacks),
 * so a read started after the datagram arrived sees the transaction.
 */
#include "postgres.h"

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(mpf_capture);

/* change_log's columns, in table order (schema/migrations/0001_catalog.sql). */
enum
{
	kColTxid,
	kColSeq,
	kColTableId,
	kColOp,
	kColHlc,
	kColOrigin,
	kColKey,
	kColImage,
	kLogColumns
};

static const Oid kLogColumnTypes[kLogColumns] = {
	XID8OID, INT8OID, INT4OID, CHAROID, INT8OID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID
};

#define kMaxLogIndexes 4

typedef struct CaptureTarget
{
	Relation	log;
	Oid			seq;
	int			nindexes;
	Relation	indexes[kMaxLogIndexes];
	IndexInfo  *index_info[kMaxLogIndexes];
} CaptureTarget;

/* Opens mpfailover.change_log and checks it is what this code writes into. */
static CaptureTarget
open_log(void)
{
	CaptureTarget target;
	Oid			nsp = get_namespace_oid("mpfailover", false);
	Oid			log_oid = get_relname_relid("change_log", nsp);
	TupleDesc	desc;
	List	   *indexes;
	ListCell   *cell;
	int			i;

	if (!OidIsValid(log_oid))
		elog(ERROR, "mpfailover capture: table mpfailover.change_log does not exist");
	target.seq = get_relname_relid("change_seq", nsp);
	if (!OidIsValid(target.seq))
		elog(ERROR, "mpfailover capture: sequence mpfailover.change_seq does not exist");
	target.log = table_open(log_oid, RowExclusiveLock);
	desc = RelationGetDescr(target.log);
	if (desc->natts != kLogColumns)
		elog(ERROR, "mpfailover capture: mpfailover.change_log has %d columns, expected %d",
			 desc->natts, kLogColumns);
	for (i = 0; i < kLogColumns; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != kLogColumnTypes[i])
			elog(ERROR, "mpfailover capture: mpfailover.change_log column %d has an unexpected type",
				 i + 1);
	}
	indexes = RelationGetIndexList(target.log);
	target.nindexes = 0;
	foreach(cell, indexes)
	{
		Relation	index = index_open(lfirst_oid(cell), RowExclusiveLock);
		IndexInfo  *info = BuildIndexInfo(index);

		if (target.nindexes == kMaxLogIndexes || info->ii_Expressions != NIL ||
			info->ii_Predicate != NIL || info->ii_Unique || info->ii_ExclusionOps != NULL)
			ereport(ERROR,
					(errmsg("mpfailover.change_log index \"%s\" cannot be maintained by capture",
							RelationGetRelationName(index)),
					 errhint("Capture maintains at most %d plain-column, non-unique, non-partial "
							 "indexes; drop that index.", kMaxLogIndexes)));
		target.indexes[target.nindexes] = index;
		target.index_info[target.nindexes] = info;
		target.nindexes++;
	}
	list_free(indexes);
	return target;
}

/* Closes the log and its indexes (the locks are kept until the end of the transaction). */
static void
close_log(CaptureTarget *target)
{
	int			i;

	for (i = 0; i < target->nindexes; i++)
		index_close(target->indexes[i], NoLock);
	table_close(target->log, NoLock);
}

/* Adds the entry just inserted into the log to each of its indexes. */
static void
index_entry(CaptureTarget *target, HeapTuple entry)
{
	TupleDesc	desc = RelationGetDescr(target->log);
	int			i;

	for (i = 0; i < target->nindexes; i++)
	{
		IndexInfo  *info = target->index_info[i];
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];
		int			k;

		for (k = 0; k < info->ii_NumIndexAttrs; k++)
			values[k] = heap_getattr(entry, info->ii_IndexAttrNumbers[k], desc, &isnull[k]);
		index_insert(target->indexes[i], values, isnull, &entry->t_self, target->log,
					 UNIQUE_CHECK_NO, false, info);
	}
}

/* Microseconds since the Unix epoch, from the same clock as clock_timestamp(). */
static int64
unix_micros(void)
{
	TimestampTz now = GetCurrentTimestamp();

	return (int64) now +
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

/*
 * Per-trigger plan: the attribute number and output function of every key and image column,
 * resolved once per backend. Looking them up per row (SPI_getvalue does) cost more than all
 * the rest of capture. Any relcache invalidation (ALTER TABLE, DROP COLUMN, ...) discards every
 * plan, so a changed table is re-resolved, and a dropped column becomes an error naming it.
 */
typedef struct ColumnPlan
{
	AttrNumber	attnum;
	FmgrInfo	output;
	bool		byval;
	int16		len;
} ColumnPlan;

typedef struct TriggerPlan
{
	Oid			trigger_oid;
	text	   *relation;		/* schema-qualified name, as in the catalog */
	int32		table_id;
	text	   *origin;
	int			nkeys;
	int			ncols;
	ColumnPlan *keys;
	ColumnPlan *cols;
	struct TriggerPlan *next;
} TriggerPlan;

/* The commit wake-up (see the header comment). */
static bool wake_registered = false;
static bool wake_pending = false;	/* this transaction captured a change */
static int	wake_fd = -1;
static struct sockaddr_un wake_addr;
static socklen_t wake_addr_len = 0;

/* Never raises an error: it runs after the commit, where an error would be a PANIC. */
static void
wake_shipper(void)
{
	if (wake_fd < 0)
	{
		int			n;

		wake_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (wake_fd < 0)
			return;
		memset(&wake_addr, 0, sizeof(wake_addr));
		wake_addr.sun_family = AF_UNIX;
		/* Abstract name: sun_path[0] stays NUL; the name is not NUL-terminated. */
		n = snprintf(wake_addr.sun_path + 1, sizeof(wake_addr.sun_path) - 1,
					 "mpfailover-wake/" UINT64_FORMAT "/%u", GetSystemIdentifier(),
					 (unsigned) MyDatabaseId);
		if (n <= 0 || n >= (int) sizeof(wake_addr.sun_path) - 1)
		{
			close(wake_fd);
			wake_fd = -1;
			return;
		}
		wake_addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + n);
	}
	(void) sendto(wake_fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *) &wake_addr,
				  wake_addr_len);
}

static void
wake_at_commit(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (wake_pending)
			{
				wake_pending = false;
				wake_shipper();
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* A prepared transaction commits later, in some session: the timer finds it. */
			wake_pending = false;
			break;
		default:
			break;
	}
}

static MemoryContext plan_context = NULL;
static TriggerPlan *plans = NULL;
static bool plans_stale = false;
static SPIPlanPtr tombstone_plan = NULL;

/*
 * Only marks the plans stale: they are freed at the next plan_for(), never here. Invalidations
 * are processed whenever a lock is first taken in a transaction (change_log's in open_log, the
 * sequence's in nextval_internal, SPI's), that is, while a plan is in use; freeing it then left
 * log_change reading freed memory (a backend crashed with signal 11 under the replication
 * benchmark, the trimmer's VACUUM of change_log sending a relcache invalidation every second).
 */
static void
forget_plans(Datum arg, Oid relid)
{
	(void) arg;
	(void) relid;
	plans_stale = true;
}

static void
resolve_columns(ColumnPlan *out, char **names, int n, TupleDesc desc, const char *relname)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		int			fnum = SPI_fnumber(desc, names[i]);
		Form_pg_attribute att;
		Oid			output_fn;
		bool		varlena;

		if (fnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("replicated table \"%s\" has no column \"%s\"", relname, names[i]),
					 errhint("Run \"mpfailover init-db\" after changing a replicated table's columns.")));
		att = TupleDescAttr(desc, fnum - 1);
		getTypeOutputInfo(att->atttypid, &output_fn, &varlena);
		out[i].attnum = (AttrNumber) fnum;
		fmgr_info_cxt(output_fn, &out[i].output, plan_context);
		out[i].byval = att->attbyval;
		out[i].len = att->attlen;
	}
}

/*
 * A column added since init-db would not be shipped: its values would be lost on the peer
 * without a word (#12). Refused like a dropped one, until init-db regenerates the trigger.
 * Stored generated columns are computed on each node and never shipped.
 */
static void
refuse_unknown_columns(ColumnPlan *cols, int n, TupleDesc desc, const char *relname)
{
	int			a;
	int			i;

	for (a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		bool		planned = false;

		if (att->attisdropped || att->attgenerated != '\0')
			continue;
		for (i = 0; i < n && !planned; i++)
			planned = cols[i].attnum == att->attnum;
		if (!planned)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("replicated table \"%s\" has column \"%s\", added since mpfailover init-db: its values would not be replicated",
							relname, NameStr(att->attname)),
					 errhint("Run \"mpfailover init-db\" after changing a replicated table's columns (docs/tables.md).")));
	}
}

/* Not inlined: setjmp in the caller's PG_TRY would otherwise clobber its locals. */
pg_noinline static TriggerPlan *
plan_for(Trigger *tg, Relation rel, TupleDesc desc, const char *relname)
{
	TriggerPlan *plan;
	MemoryContext old;

	if (plans_stale)
	{
		/* No plan is in use here: plan_for runs before anything else of a trigger call. */
		if (plan_context != NULL)
			MemoryContextReset(plan_context);
		plans = NULL;
		plans_stale = false;
	}
	for (plan = plans; plan != NULL; plan = plan->next)
		if (plan->trigger_oid == tg->tgoid)
			return plan;

	if (plan_context == NULL)
	{
		plan_context = AllocSetContextCreate(TopMemoryContext, "mpfailover capture plans",
											 ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(forget_plans, (Datum) 0);
	}
	if (tg->tgnargs < 4)
		elog(ERROR, "mpfailover capture: trigger has %d arguments, expected at least 4",
			 tg->tgnargs);
	old = MemoryContextSwitchTo(plan_context);
	plan = palloc0(sizeof(TriggerPlan));
	plan->trigger_oid = tg->tgoid;
	plan->table_id = pg_strtoint32(tg->tgargs[0]);
	plan->origin = cstring_to_text(tg->tgargs[1]);
	plan->relation = cstring_to_text(psprintf("%s.%s",
											  get_namespace_name(RelationGetNamespace(rel)),
											  RelationGetRelationName(rel)));
	plan->nkeys = pg_strtoint32(tg->tgargs[2]);
	if (plan->nkeys < 1 || 3 + plan->nkeys > tg->tgnargs)
		elog(ERROR, "mpfailover capture: bad key column count %d", plan->nkeys);
	plan->ncols = tg->tgnargs - 3 - plan->nkeys;
	plan->keys = palloc0(sizeof(ColumnPlan) * plan->nkeys);
	plan->cols = palloc0(sizeof(ColumnPlan) * Max(plan->ncols, 1));
	MemoryContextSwitchTo(old);
	/* On error here the half-built plan is simply not linked in; the context is reset later. */
	resolve_columns(plan->keys, &tg->tgargs[3], plan->nkeys, desc, relname);
	resolve_columns(plan->cols, &tg->tgargs[3 + plan->nkeys], plan->ncols, desc, relname);
	refuse_unknown_columns(plan->cols, plan->ncols, desc, relname);
	plan->next = plans;
	plans = plan;
	return plan;
}

/* text[] of the planned columns of tuple, in plan order. */
static Datum
columns_as_text_array(HeapTuple tuple, TupleDesc desc, ColumnPlan *cols, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1];
	int			lbs[1];
	int			i;

	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		value = heap_getattr(tuple, cols[i].attnum, desc, &isnull);

		nulls[i] = isnull;
		elems[i] = isnull ? (Datum) 0
			: CStringGetTextDatum(OutputFunctionCall(&cols[i].output, value));
	}
	dims[0] = n;
	lbs[0] = 1;
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/* Binary comparison: a key rewritten to an equal but differently stored value logs D + I,
 * which the peer applies to the same net effect. */
static bool
key_changed(HeapTuple old_tuple, HeapTuple new_tuple, TupleDesc desc, TriggerPlan *plan)
{
	int			i;

	for (i = 0; i < plan->nkeys; i++)
	{
		bool		old_null;
		bool		new_null;
		Datum		a = heap_getattr(old_tuple, plan->keys[i].attnum, desc, &old_null);
		Datum		b = heap_getattr(new_tuple, plan->keys[i].attnum, desc, &new_null);

		if (old_null != new_null)
			return true;
		if (!old_null && !datumIsEqual(a, b, plan->keys[i].byval, plan->keys[i].len))
			return true;
	}
	return false;
}

static void
log_change(CaptureTarget *target, TriggerPlan *plan, char op, HeapTuple tuple, TupleDesc desc,
		   bool with_image)
{
	Datum		values[kLogColumns];
	bool		nulls[kLogColumns] = {false};
	HeapTuple	entry;

	values[kColTxid] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	values[kColSeq] = Int64GetDatum(nextval_internal(target->seq, false));
	values[kColTableId] = Int32GetDatum(plan->table_id);
	values[kColOp] = CharGetDatum(op);
	values[kColHlc] = Int64GetDatum(unix_micros());
	values[kColOrigin] = PointerGetDatum(plan->origin);
	values[kColKey] = columns_as_text_array(tuple, desc, plan->keys, plan->nkeys);
	if (with_image)
		values[kColImage] = columns_as_text_array(tuple, desc, plan->cols, plan->ncols);
	else
	{
		values[kColImage] = (Datum) 0;
		nulls[kColImage] = true;
	}
	entry = heap_form_tuple(RelationGetDescr(target->log), values, nulls);
	simple_heap_insert(target->log, entry);
	index_entry(target, entry);
	heap_freetuple(entry);
}

/*
 * A delete also leaves a tombstone (mpfailover.tombstone, which is indexed, so this goes through
 * SPI; deletes are the rare operation). Its timestamp is the deleting transaction's commit time,
 * found later through txid, so it equals what the peer receives for the same delete.
 */
static void
record_tombstone(TriggerPlan *plan, Datum key)
{
	Datum		values[4];
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "mpfailover capture: SPI_connect failed");
	if (tombstone_plan == NULL)
	{
		Oid			types[4] = {TEXTOID, TEXTARRAYOID, TEXTOID, XID8OID};
		SPIPlanPtr	p = SPI_prepare(
			"INSERT INTO mpfailover.tombstone (relation, key, origin, txid, hlc) "
			"VALUES ($1, $2, $3, $4, 0) ON CONFLICT (relation, key) DO UPDATE "
			"SET origin = EXCLUDED.origin, txid = EXCLUDED.txid, hlc = 0, deleted_at = now()",
			4, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "mpfailover capture: could not prepare the tombstone insert");
		tombstone_plan = p;
	}
	values[0] = PointerGetDatum(plan->relation);
	values[1] = key;
	values[2] = PointerGetDatum(plan->origin);
	values[3] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	rc = SPI_execute_plan(tombstone_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "mpfailover capture: tombstone insert failed: %s", SPI_result_code_string(rc));
	SPI_finish();
}

Datum
mpf_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	const char *applying;
	TupleDesc	desc;
	TriggerPlan *plan;
	CaptureTarget target;
	int			save_datestyle = DateStyle;
	int			save_dateorder = DateOrder;
	int			save_intervalstyle = IntervalStyle;
	int			save_float_digits = extra_float_digits;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "mpfailover capture: not called as a trigger");
	td = (TriggerData *) fcinfo->context;
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "mpfailover capture: must be an AFTER ... FOR EACH ROW trigger");

	/* The applier's own writes come from the peer: never capture them again (docs/design.md §3). */
	applying = GetConfigOption("mpfailover.applying", true, false);
	if (applying != NULL && strcmp(applying, "on") == 0)
		return PointerGetDatum(NULL);

	desc = RelationGetDescr(td->tg_relation);
	plan = plan_for(td->tg_trigger, td->tg_relation, desc,
					RelationGetRelationName(td->tg_relation));
	target = open_log();
	if (!wake_registered)
	{
		RegisterXactCallback(wake_at_commit, NULL);
		wake_registered = true;
	}
	wake_pending = true;

	DateStyle = USE_ISO_DATES;
	DateOrder = DATEORDER_YMD;
	IntervalStyle = INTSTYLE_POSTGRES;
	extra_float_digits = 1;
	PG_TRY();
	{
		if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
			log_change(&target, plan, 'I', td->tg_trigtuple, desc, true);
		else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		{
			log_change(&target, plan, 'D', td->tg_trigtuple, desc, false);
			record_tombstone(plan, columns_as_text_array(td->tg_trigtuple, desc, plan->keys,
														 plan->nkeys));
		}
		else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		{
			if (key_changed(td->tg_trigtuple, td->tg_newtuple, desc, plan))
			{
				/* A new key is a different row on the peer: delete the old, insert the new. */
				log_change(&target, plan, 'D', td->tg_trigtuple, desc, false);
				record_tombstone(plan, columns_as_text_array(td->tg_trigtuple, desc, plan->keys,
															 plan->nkeys));
				log_change(&target, plan, 'I', td->tg_newtuple, desc, true);
			}
			else
				log_change(&target, plan, 'U', td->tg_newtuple, desc, true);
		}
		else
			elog(ERROR, "mpfailover capture: unsupported trigger event");
	}
	PG_FINALLY();
	{
		DateStyle = save_datestyle;
		DateOrder = save_dateorder;
		IntervalStyle = save_intervalstyle;
		extra_float_digits = save_float_digits;
	}
	PG_END_TRY();

	close_log(&target);
	return PointerGetDatum(NULL);
}
