# ipr — build. `make` builds build/libipr.a, build/libipr.so and build/ipr.
# `make test` builds every tests/test_*.c against an ASan+UBSan build of the
# library and runs them; `make fuzz` runs each libFuzzer target for FUZZ_SECONDS.
# Source files are found by wildcard, so adding a module needs no edit here.

PREFIX  ?= /usr/local
CC      ?= cc
CLANG   ?= clang
BUILD   ?= build
WARN     = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 $(WARN) -D_GNU_SOURCE -Iinclude -Isrc -fPIC -pthread -MMD -MP
PKGS     = libcjson libutf8proc libxxhash sqlite3 libmicrohttpd libcurl zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += $(PKG_CFLAGS)
LDLIBS   = $(PKG_LIBS) -lm -pthread
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_SRC  := $(filter-out src/cli/%,$(LIB_SRC))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC:= $(sort $(wildcard bench/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
SAN_OBJ  := $(LIB_SRC:%.c=$(BUILD)/san/%.o) $(filter-out $(BUILD)/san/src/cli/main.o,$(CLI_SRC:%.c=$(BUILD)/san/%.o))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all test fuzz bench install uninstall clean FORCE
.SECONDARY:
all: $(BUILD)/libipr.a $(BUILD)/libipr.so $(BUILD)/ipr $(BUILD)/ipr.pc

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN) -c $< -o $@

$(BUILD)/libipr.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libipr.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

$(BUILD)/ipr: $(CLI_OBJ) $(BUILD)/libipr.a
	$(CC) -o $@ $(CLI_OBJ) $(BUILD)/libipr.a $(LDLIBS)

# Regenerated every time: it records PREFIX, which may differ between runs.
$(BUILD)/ipr.pc: scripts/ipr.pc.in FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBS@|$(PKG_LIBS) -lm -pthread|' -e 's|@REQUIRES@|$(PKGS)|' $< > $@

# Tests link the sanitized library and the CLI's command objects (not main), so
# a test can drive a command end to end without a subprocess.
$(BUILD)/tests/%: tests/%.c $(SAN_OBJ) tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN) -Itests $< $(SAN_OBJ) -o $@ $(LDLIBS)

test: all $(TEST_BIN)
	@IPR=$(abspath $(BUILD)/ipr) BUILD=$(abspath $(BUILD)) tests/run.sh $(TEST_BIN)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libipr.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O2 $< $(BUILD)/libipr.a -o $@ $(LDLIBS)

bench: all $(BENCH_BIN)

# libFuzzer targets: clang, sanitizers, the library sources compiled in.
FUZZ_SECONDS ?= 20
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	$(CLANG) -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined $< $(LIB_SRC) -o $@ $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  echo "fuzz: $$f for $(FUZZ_SECONDS)s"; \
	  mkdir -p $(BUILD)/fuzz/corpus-$$(basename $$f); \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)/fuzz/corpus-$$(basename $$f) tests/fuzz/seeds/$$(basename $$f) 2>$(BUILD)/fuzz/$$(basename $$f).log || { tail -40 $(BUILD)/fuzz/$$(basename $$f).log; exit 1; }; \
	  tail -1 $(BUILD)/fuzz/$$(basename $$f).log; \
	done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/ipr $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/ipr $(DESTDIR)$(PREFIX)/bin/ipr
	install -m 644 $(BUILD)/libipr.a $(DESTDIR)$(PREFIX)/lib/libipr.a
	install -m 755 $(BUILD)/libipr.so $(DESTDIR)$(PREFIX)/lib/libipr.so
	install -m 644 include/ipr/*.h $(DESTDIR)$(PREFIX)/include/ipr/
	install -m 644 $(BUILD)/ipr.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/ipr.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/ipr $(DESTDIR)$(PREFIX)/lib/libipr.a $(DESTDIR)$(PREFIX)/lib/libipr.so $(DESTDIR)$(PREFIX)/include/ipr $(DESTDIR)$(PREFIX)/lib/pkgconfig/ipr.pc

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
