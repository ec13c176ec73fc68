/*
 * mpfailover_capture: the capture trigger, as a PostgreSQL C function.
 *
 * NOTES: why C. The capture benchmark (tests/bench/) showed a generated PL/pgSQL trigger costing
 * 13-16% of the application's write throughput even at its leanest, against a target of at most
 * 10%: the PL/pgSQL call alone cost ~6%. This function does the same work with a cached SPI plan
 * and direct calls to the types' output functions.
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
 * Ordering. The change number comes from nextval() in the INSERT, after any row-lock or FK wait
 * this row caused (AFTER ROW triggers named "mpfailover_capture" fire after the RI triggers), so
 * it is later than every change number of a transaction this one waited for (NOTES.md §1).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(mpf_capture);

static SPIPlanPtr insert_plan = NULL;

/* Microseconds since the Unix epoch, from the same clock as clock_timestamp(). */
static int64
unix_micros(void)
{
	TimestampTz now = GetCurrentTimestamp();

	return (int64) now +
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

/* text[] of the named columns of tuple, in the given order. */
static Datum
columns_as_text_array(HeapTuple tuple, TupleDesc desc, char **names, int n,
					  const char *relname)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1];
	int			lbs[1];
	int			i;

	for (i = 0; i < n; i++)
	{
		int			fnum = SPI_fnumber(desc, names[i]);
		char	   *text;

		if (fnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("replicated table \"%s\" has no column \"%s\"", relname, names[i]),
					 errhint("Run \"mpfailover init-db\" after changing a replicated table's columns.")));
		text = SPI_getvalue(tuple, desc, fnum);
		nulls[i] = (text == NULL);
		elems[i] = text ? CStringGetTextDatum(text) : (Datum) 0;
	}
	dims[0] = n;
	lbs[0] = 1;
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

static bool
key_changed(HeapTuple old_tuple, HeapTuple new_tuple, TupleDesc desc, char **keys, int nkeys)
{
	int			i;

	for (i = 0; i < nkeys; i++)
	{
		int			fnum = SPI_fnumber(desc, keys[i]);
		char	   *a = SPI_getvalue(old_tuple, desc, fnum);
		char	   *b = SPI_getvalue(new_tuple, desc, fnum);

		if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
			return true;
	}
	return false;
}

static void
log_change(int32 table_id, char op, text *origin, HeapTuple tuple, TupleDesc desc,
		   char **keys, int nkeys, char **cols, int ncols, bool with_image, const char *relname)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int			rc;

	values[0] = Int32GetDatum(table_id);
	values[1] = CharGetDatum(op);
	values[2] = Int64GetDatum(unix_micros());
	values[3] = PointerGetDatum(origin);
	values[4] = columns_as_text_array(tuple, desc, keys, nkeys, relname);
	if (with_image)
		values[5] = columns_as_text_array(tuple, desc, cols, ncols, relname);
	else
	{
		values[5] = (Datum) 0;
		nulls[5] = 'n';
	}
	rc = SPI_execute_plan(insert_plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "mpfailover capture: insert into change_log failed: %s",
			 SPI_result_code_string(rc));
}

Datum
mpf_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	Trigger    *tg;
	const char *applying;
	int32		table_id;
	int			nkeys;
	int			ncols;
	char	  **keys;
	char	  **cols;
	text	   *origin;
	TupleDesc	desc;
	const char *relname;
	int			save_datestyle = DateStyle;
	int			save_dateorder = DateOrder;
	int			save_intervalstyle = IntervalStyle;
	int			save_float_digits = extra_float_digits;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "mpfailover capture: not called as a trigger");
	td = (TriggerData *) fcinfo->context;
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "mpfailover capture: must be an AFTER ... FOR EACH ROW trigger");

	/* The applier's own writes come from the peer: never capture them again (NOTES.md §3). */
	applying = GetConfigOption("mpfailover.applying", true, false);
	if (applying != NULL && strcmp(applying, "on") == 0)
		return PointerGetDatum(NULL);

	tg = td->tg_trigger;
	if (tg->tgnargs < 4)
		elog(ERROR, "mpfailover capture: trigger has %d arguments, expected at least 4",
			 tg->tgnargs);
	table_id = pg_strtoint32(tg->tgargs[0]);
	origin = cstring_to_text(tg->tgargs[1]);
	nkeys = pg_strtoint32(tg->tgargs[2]);
	if (nkeys < 1 || 3 + nkeys > tg->tgnargs)
		elog(ERROR, "mpfailover capture: bad key column count %d", nkeys);
	keys = &tg->tgargs[3];
	cols = &tg->tgargs[3 + nkeys];
	ncols = tg->tgnargs - 3 - nkeys;
	desc = td->tg_relation->rd_att;
	relname = RelationGetRelationName(td->tg_relation);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "mpfailover capture: SPI_connect failed");
	if (insert_plan == NULL)
	{
		Oid			types[6] = {INT4OID, CHAROID, INT8OID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
		SPIPlanPtr	plan = SPI_prepare(
			"INSERT INTO mpfailover.change_log (table_id, op, hlc, origin, key, image) "
			"VALUES ($1, $2, $3, $4, $5, $6)", 6, types);

		if (plan == NULL)
			elog(ERROR, "mpfailover capture: could not prepare the log insert: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "mpfailover capture: SPI_keepplan failed");
		insert_plan = plan;
	}

	DateStyle = USE_ISO_DATES;
	DateOrder = DATEORDER_YMD;
	IntervalStyle = INTSTYLE_POSTGRES;
	extra_float_digits = 1;
	PG_TRY();
	{
		if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
			log_change(table_id, 'I', origin, td->tg_trigtuple, desc, keys, nkeys, cols, ncols,
					   true, relname);
		else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
			log_change(table_id, 'D', origin, td->tg_trigtuple, desc, keys, nkeys, cols, ncols,
					   false, relname);
		else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		{
			if (key_changed(td->tg_trigtuple, td->tg_newtuple, desc, keys, nkeys))
			{
				/* A new key is a different row on the peer: delete the old, insert the new. */
				log_change(table_id, 'D', origin, td->tg_trigtuple, desc, keys, nkeys, cols,
						   ncols, false, relname);
				log_change(table_id, 'I', origin, td->tg_newtuple, desc, keys, nkeys, cols,
						   ncols, true, relname);
			}
			else
				log_change(table_id, 'U', origin, td->tg_newtuple, desc, keys, nkeys, cols,
						   ncols, true, relname);
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

	SPI_finish();
	return PointerGetDatum(NULL);
}
