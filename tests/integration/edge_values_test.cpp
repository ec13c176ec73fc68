// Edge values through a real pair (issue #12, "add your own edge values"): every value below is
// written on one node and must read back on the other exactly: each row's text form, read
// through client_encoding UTF8 in UTC with extra_float_digits 3, compared row by row in key
// order, and the md5 of the rows (support/mirror.hpp). Writers use odd session settings
// (time zones, DateStyle, IntervalStyle, extra_float_digits) that the capture must not let
// through.
#include <doctest/doctest.h>

#include "support/mirror.hpp"

using mpf::test::exec_sql;
using mpf::test::query_text;

namespace {

// 100 columns of assorted types: c001 int, c002 text, c003 float8, c004 timestamptz, ...
std::string wide_table_sql() {
  static const char* kTypes[] = {"int",   "text",  "float8",  "timestamptz", "numeric",
                                 "bytea", "jsonb", "boolean", "date",        "uuid"};
  std::string cols;
  for (int i = 1; i <= 100; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "c%03d", i);
    cols += std::string(", ") + name + " " + kTypes[(i - 1) % 10];
  }
  return "CREATE TABLE ev_wide (id int PRIMARY KEY" + cols + ");";
}

// A value of column i (1-based) for row r, as an SQL expression.
std::string wide_value(int i, int r) {
  switch ((i - 1) % 10) {
    case 0:
      return std::to_string(i * 1000 + r);
    case 1:
      return "'t" + std::to_string(i) + "-" + std::to_string(r) + "'";
    case 2:
      return std::to_string(i) + "." + std::to_string(r) + "e-3";
    case 3:
      return "'2026-01-01 00:00:00+00'::timestamptz + interval '" + std::to_string(i + r) +
             " hours'";
    case 4:
      return "'" + std::to_string(i) + "." + std::to_string(r) + "0'::numeric";
    case 5:
      return "'\\x" + std::string(r % 2 ? "00ff" : "") + "'::bytea";
    case 6:
      return "'{\"i\": " + std::to_string(i) + ", \"r\": [" + std::to_string(r) + "]}'";
    case 7:
      return r % 2 ? "true" : "NULL";
    case 8:
      return "'2000-02-29'::date + " + std::to_string(i + r);
    default:
      return "md5('" + std::to_string(i) + "/" + std::to_string(r) + "')::uuid";
  }
}

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "edge";
    o.base_port = 58000;
    o.port_span = 500;
    o.setup_sql = R"sql(
      CREATE TABLE ev_num (id int PRIMARY KEY, f4 float4, f8 float8, n numeric);
      CREATE TABLE ev_time (id int PRIMARY KEY, tz timestamptz, ts timestamp, d date,
                            t time, ttz timetz, iv interval);
      CREATE TABLE ev_bytes (id int PRIMARY KEY, b bytea);
      CREATE TABLE ev_text (k text PRIMARY KEY, v text);
      CREATE TABLE ev_big (id int PRIMARY KEY, t text, b bytea);
      CREATE TABLE ev_comp (k1 text, k2 int, k3 date, v text, PRIMARY KEY (k1, k2, k3));
      CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'with space', 'ünïcödé');
      CREATE DOMAIN posint AS int CHECK (VALUE > 0);
      CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
      CREATE TYPE pair_t AS (x int, label text);
      CREATE TABLE ev_types (id uuid PRIMARY KEY, arr int[], tarr text[], arr2 int[][],
        j json, jb jsonb, ip inet, net cidr, mac macaddr, iv interval, r tstzrange,
        nr numrange, e mood, ea mood[], d posint, em email, pt point, bits varbit,
        tsv tsvector, c pair_t, ca pair_t[], o oid, xm xml);
      CREATE TABLE ev_enum_key (e mood PRIMARY KEY, v text);
      CREATE TABLE ev_domain_key (d posint PRIMARY KEY, v text);
      CREATE SCHEMA ev_schema;
      CREATE TABLE ev_schema.items (id bigint PRIMARY KEY, v text);
      -- The same name in public, not replicated: the listed schema's table must be the one.
      CREATE TABLE public.items (id bigint PRIMARY KEY, v text);
      CREATE TABLE ev_quoted_cols (id int PRIMARY KEY, "Column With Space" text,
        "select" int, "MixedCase" text, "quo""te" text, "ünï" text);
      CREATE TABLE "Mixed Case Table" ("Key" int PRIMARY KEY, "Value" text);
    )sql" + wide_table_sql();
    o.tables = {"ev_num",        "ev_time",         "ev_bytes",       "ev_text",
                "ev_big",        "ev_comp",         "ev_types",       "ev_enum_key",
                "ev_domain_key", "ev_schema.items", "ev_quoted_cols", "ev_wide"};
    return o;
  }());
}

}  // namespace

TEST_SUITE("edge_values") {
  TEST_CASE("NaN, infinities, -0 and extreme floats and numerics") {
    auto& p = pair();
    // A writer with extra_float_digits 0 (rounded output): the capture must not round.
    exec_sql(p.conn_a(), R"sql(
      SET extra_float_digits = 0;
      INSERT INTO ev_num VALUES
        (1, 'NaN', 'NaN', 'NaN'),
        (2, 'Infinity', 'Infinity', 'Infinity'),
        (3, '-Infinity', '-Infinity', '-Infinity'),
        (4, '-0', '-0', '-0'),
        (5, 0.1::float4 + 0.2::float4, 0.1::float8 + 0.2::float8, 0.1 + 0.2),
        (6, '1.4e-45', '4.9e-324', '1e-16383'),
        (7, '3.4028235e38', '1.7976931348623157e308', '9.99e131071'),
        (8, '-1.17549435e-38', '-2.2250738585072014e-308',
            '-123456789012345678901234567890.123456789012345678901234567890'),
        (9, NULL, NULL, NULL),
        (10, 1.0/3, 1.0/3, round(1.0/3, 1000))
    )sql");
    p.require_same({"ev_num"});
    p.require_query("b", "SELECT f8::text FROM ev_num WHERE id IN (1, 2, 3, 4) ORDER BY id",
                    "NaN\nInfinity\n-Infinity\n-0");
    p.require_query("b", "SELECT f8 = 0.1::float8 + 0.2::float8 FROM ev_num WHERE id = 5", "t");
    // Back from b, through an update of every row.
    exec_sql(p.conn_b(), "UPDATE ev_num SET f8 = -f8, f4 = -f4, n = -n");
    p.require_query("a", "SELECT f8::text FROM ev_num WHERE id IN (2, 4) ORDER BY id",
                    "-Infinity\n0");
    p.require_same({"ev_num"});
  }

  TEST_CASE("timestamptz from other time zones, infinity, BC dates, intervals") {
    auto& p = pair();
    exec_sql(p.conn_a(), R"sql(
      SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'SQL, DMY';
      SET IntervalStyle = 'sql_standard';
      INSERT INTO ev_time VALUES
        (1, '2026-03-29 02:30:00', '2026-03-29 02:30:00', '29/02/2024', '23:59:59.999999',
            '00:00:00+14:59', '-1 year 2 mons -3 days 04:05:06.789'),
        (2, 'infinity', 'infinity', 'infinity', '24:00:00', '12:00-12', '178000000 years'),
        (3, '-infinity', '-infinity', '-infinity', '00:00', '00:00+00',
            '-178000000 years -1 microsecond'),
        (4, '0044-03-15 12:00:00 BC', '4713-01-01 00:00:00 BC', '4714-11-24 BC', '12:34:56.5',
            '01:02:03.000001+05:45', '1 microsecond'),
        (5, '294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999', '5874897-12-31',
            NULL, NULL, '0')
    )sql");
    exec_sql(p.conn_a(),
             "SET TimeZone = 'America/St_Johns'; SET IntervalStyle = 'iso_8601'; "
             "INSERT INTO ev_time (id, tz, iv) VALUES (6, '2026-11-01 01:30:00', "
             "'P1Y2M3DT4H5M6.007S')");
    p.require_same({"ev_time"});
    // Read in UTC on both (support/mirror.hpp): the same instants.
    const std::string instants = "SELECT tz::text FROM ev_time WHERE id IN (1, 6) ORDER BY id";
    p.require_query("b", instants, query_text(p.conn_a(), instants));
    p.require_query("b", "SELECT d::text FROM ev_time WHERE id = 4", "4714-11-24 BC");
  }

  TEST_CASE("bytea: \\x00, every byte value, empty, 1 MiB of random bytes") {
    auto& p = pair();
    exec_sql(p.conn_a(), R"sql(
      SET bytea_output = 'escape';
      INSERT INTO ev_bytes VALUES
        (1, '\x00'),
        (2, (SELECT string_agg(set_byte('\x00'::bytea, 0, i), '' ORDER BY i)
             FROM generate_series(0, 255) i)),
        (3, ''),
        (4, NULL),
        (5, (SELECT string_agg(decode(md5(i::text), 'hex'), '') FROM generate_series(1, 65536) i))
    )sql");
    p.require_same({"ev_bytes"});
    p.require_query("b", "SELECT length(b), md5(b) FROM ev_bytes WHERE id = 2",
                    "256|" + query_text(p.conn_a(), "SELECT md5(b) FROM ev_bytes WHERE id = 2"));
    p.require_query("b", "SELECT length(b) FROM ev_bytes WHERE id = 5", "1048576");
  }

  TEST_CASE("text oddities as keys and values") {
    auto& p = pair();
    exec_sql(p.conn_a(), R"sql(
      INSERT INTO ev_text VALUES
        (U&'e\0301', 'combining acute'),
        (U&'\00E9', 'precomposed: a different key'),
        ('👩‍👩‍👧 🏳️‍🌈', 'emoji with joiners'),
        ('שלום עולם', U&'\200Fmixed RTL \202Eoverride\202C'),
        (E'ctl\x01\x02\t\n\r\x1b\x7f', E'bell\x07 and form feed\x0c'),
        ('trailing   ', 'spaces   '),
        ('  leading', '	tab'),
        (E'back\\slash \\\\ \\x00 \\N', E'\\'),
        ('quotes '' " ` ''''', '"{}(),' || chr(39)),
        ('NULL', NULL),
        ('', ''),
        (' ', 'NULL'),
        ('{a,b}', '(1,2)'),
        ('very long', repeat('0123456789abcdef', 8192)),
        (repeat('k', 2000), 'a long key')
    )sql");
    p.require_same({"ev_text"});
    p.require_query("b", "SELECT count(*), count(v) FROM ev_text", "15|14");
    p.require_query("b", "SELECT v IS NULL FROM ev_text WHERE k = 'NULL'", "t");
    // Key updates and deletes of odd keys, from b.
    exec_sql(p.conn_b(),
             "UPDATE ev_text SET k = k || '→' WHERE k LIKE 'quotes%' OR k = ''; "
             "DELETE FROM ev_text WHERE k = U&'e\\0301' OR k = 'NULL'");
    p.require_query("a", "SELECT count(*) FROM ev_text", "13");
    p.require_same({"ev_text"});
  }

  TEST_CASE("1 MiB text and bytea values, updated and deleted") {
    auto& p = pair();
    exec_sql(p.conn_a(),
             "INSERT INTO ev_big SELECT i, repeat(md5(i::text), 32768), "
             "(SELECT string_agg(decode(md5(i::text || j::text), 'hex'), '') "
             " FROM generate_series(1, 65536) j) FROM generate_series(1, 3) i");
    p.require_same({"ev_big"});
    exec_sql(p.conn_a(),
             "UPDATE ev_big SET t = t || 'x' WHERE id = 1; DELETE FROM ev_big "
             "WHERE id = 2");
    p.require_query("b", "SELECT id, length(t), length(b) FROM ev_big ORDER BY id",
                    "1|1048577|1048576\n3|1048576|1048576");
    p.require_same({"ev_big"});
  }

  TEST_CASE("100 columns: insert, update of one column, delete") {
    auto& p = pair();
    std::string sql = "INSERT INTO ev_wide VALUES ";
    for (int r = 1; r <= 20; ++r) {
      sql += std::string(r > 1 ? ", " : "") + "(" + std::to_string(r);
      for (int i = 1; i <= 100; ++i) sql += ", " + wide_value(i, r);
      sql += ")";
    }
    exec_sql(p.conn_a(), sql);
    p.require_same({"ev_wide"});
    exec_sql(p.conn_a(),
             "UPDATE ev_wide SET c052 = c052 || '-u', c100 = NULL WHERE id % 3 = 0; "
             "DELETE FROM ev_wide WHERE id > 15");
    p.require_query("b", "SELECT count(*), count(c100) FROM ev_wide", "15|10");
    p.require_same({"ev_wide"});
  }

  TEST_CASE("a composite text/int/date key, with updates of one key part") {
    auto& p = pair();
    exec_sql(p.conn_a(),
             "INSERT INTO ev_comp SELECT 'k,' || (i % 3), i, '2000-01-01'::date + i, 'v' || i "
             "FROM generate_series(1, 30) i");
    exec_sql(p.conn_a(),
             "UPDATE ev_comp SET k2 = -k2 WHERE k2 % 4 = 0; "
             "UPDATE ev_comp SET k1 = 'moved \"' || k1 WHERE k2 = 5; "
             "DELETE FROM ev_comp WHERE k3 > '2000-01-28'");
    p.require_query("b", "SELECT count(*), min(k2) FROM ev_comp", "27|-24");
    p.require_same({"ev_comp"});
  }

  TEST_CASE("arrays, json and jsonb, uuid, inet/cidr, intervals, ranges, enums, domains") {
    auto& p = pair();
    exec_sql(p.conn_a(), R"sql(
      INSERT INTO ev_types VALUES
        ('00000000-0000-0000-0000-000000000000', '{1,NULL,3}', '{"a b","NULL",NULL,"\"","\\",""}',
         '{{1,2},{3,4}}', '{"dup": 1, "dup": 2,   "sp" : [ ]}', '{"dup": 1, "dup": 2, "n": 1.50}',
         '2001:db8::1/64', '10.0.0.0/8', '08:00:2b:01:02:03', '1 day -1 second',
         '[2026-01-01 00:00+00,infinity)', '(,1.5]', 'with space', '{ünïcödé,sad}', 1,
         'a@b', '(1.5,-2)', B'10110', 'a:1 fat:2 cat:3', ROW(1, 'x, "y"'),
         ARRAY[ROW(2, NULL)::pair_t, NULL], 4294967295, '<a x="1">t&amp;</a>'),
        ('ffffffff-ffff-ffff-ffff-ffffffffffff', '{}', '{}', '{}', 'null', '[]', '::', '::/0',
         NULL, '-178000000 years', 'empty', '[-Infinity,Infinity]', 'ünïcödé', '{}', 2147483647,
         'x@y', NULL, B'', '', ROW(NULL, NULL), '{}', 0, NULL),
        (gen_random_uuid(), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
    )sql");
    exec_sql(p.conn_a(),
             "INSERT INTO ev_enum_key VALUES ('sad', '1'), ('with space', '2'), "
             "('ünïcödé', '3'); INSERT INTO ev_domain_key VALUES (1, 'a'), "
             "(2147483647, 'b')");
    p.require_same({"ev_types", "ev_enum_key", "ev_domain_key"});
    p.require_query("b",
                    "SELECT j::text FROM ev_types WHERE id = "
                    "'00000000-0000-0000-0000-000000000000'",
                    "{\"dup\": 1, \"dup\": 2,   \"sp\" : [ ]}");
    exec_sql(p.conn_b(),
             "UPDATE ev_enum_key SET e = 'happy' WHERE e = 'sad'; "
             "UPDATE ev_domain_key SET d = d - 1 WHERE d > 1; "
             "UPDATE ev_types SET jb = jb || '{\"x\": null}', arr = arr || 4 "
             "WHERE arr IS NOT NULL");
    p.require_query("a", "SELECT string_agg(e::text, ',' ORDER BY e) FROM ev_enum_key",
                    "happy,with space,ünïcödé");
    p.require_same({"ev_types", "ev_enum_key", "ev_domain_key"});
  }

  TEST_CASE("a table in another schema, with a same-named table in public left alone") {
    auto& p = pair();
    exec_sql(p.conn_a(),
             "INSERT INTO ev_schema.items VALUES (1, 'schema'), (2, 'x'); "
             "INSERT INTO public.items VALUES (1, 'public, not replicated')");
    exec_sql(p.conn_a(), "UPDATE ev_schema.items SET v = 'y' WHERE id = 2");
    p.require_same({"ev_schema.items"});
    p.require_query("b", "SELECT string_agg(v, ',' ORDER BY id) FROM ev_schema.items", "schema,y");
    CHECK(query_text(p.conn_b(), "SELECT count(*) FROM public.items") == "0");
  }

  TEST_CASE("quoted column names: spaces, a keyword, mixed case, a quote, non-ASCII") {
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO ev_quoted_cols VALUES (1, 'a', 2, 'b', 'c', 'd')");
    exec_sql(p.conn_a(), "UPDATE ev_quoted_cols SET \"quo\"\"te\" = 'q', \"select\" = 3");
    exec_sql(p.conn_b(), "INSERT INTO ev_quoted_cols (id, \"ünï\") VALUES (2, 'from b')");
    p.require_query("a", "SELECT count(*) FROM ev_quoted_cols", "2");
    p.require_same({"ev_quoted_cols"});
  }

  TEST_CASE("a table whose own name needs quoting" * doctest::skip()) {
    // Skipped: issue #12, "Seen on the landed code", last item (the config parser refuses a
    // table name that needs quoting), being fixed separately. Then list "\"Mixed Case
    // Table\"" in o.tables above, as replication.tables spells it.
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO \"Mixed Case Table\" VALUES (1, 'x')");
    p.require_same({"\"Mixed Case Table\""});
  }
}
