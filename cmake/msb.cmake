# Helpers that keep every layer's CMakeLists.txt a few lines long.

# msb_library(NAME SOURCES ... [DEPS ...])
#   A static library `msb_<NAME>` whose headers are included as "<layer>/<file>.h" from src/.
function(msb_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(msb_${name} STATIC ${ARG_SOURCES})
  target_include_directories(msb_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(msb_${name} PUBLIC ${ARG_DEPS})
endfunction()

# msb_test(NAME SOURCES ... [DEPS ...] [LABELS ...])
#   A gtest binary `NAME` registered with ctest test by test. Label "kvm" marks tests that need
#   /dev/kvm, "guest" those that boot the guest kernel; they skip with a reason when absent.
function(msb_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE
    MSB_SOURCE_DIR="${PROJECT_SOURCE_DIR}" MSB_BINARY_DIR="${PROJECT_BINARY_DIR}")
  set(labels unit)
  if(ARG_LABELS)
    set(labels ${ARG_LABELS})
  endif()
  gtest_discover_tests(${name} PROPERTIES LABELS "${labels}" DISCOVERY_TIMEOUT 60)
endfunction()

# msb_fuzz(NAME SOURCES ... [DEPS ...] [MAX_LEN n] [DICT file] [SEEDS dir])
#   A libFuzzer target (ASan + UBSan) when configured with -DMSB_FUZZ=ON and clang-14; nothing
#   otherwise. Put the code under test in SOURCES, not only in DEPS, so that it carries the
#   fuzzer's coverage instrumentation; a source listed by several fuzz targets is compiled once.
#   scripts/fuzz builds and runs every target declared here, with -max_len=MAX_LEN (default
#   4096), the libFuzzer dictionary DICT and the checked-in seed corpus SEEDS (both relative to
#   the calling CMakeLists.txt, optional). It finds them in ${CMAKE_BINARY_DIR}/fuzz_targets.tsv:
#   name, binary, max_len, dict, seeds ("-" when absent).
function(msb_fuzz name)
  if(NOT MSB_FUZZ)
    return()
  endif()
  cmake_parse_arguments(ARG "" "MAX_LEN;DICT;SEEDS" "SOURCES;DEPS" ${ARGN})
  set(flags -fsanitize=fuzzer,address,undefined)
  add_executable(${name})
  foreach(source ${ARG_SOURCES})
    get_filename_component(path ${source} ABSOLUTE)
    if(path MATCHES "_fuzz\\.cpp$")
      target_sources(${name} PRIVATE ${path})
      continue()
    endif()
    # Code under test: one instrumented object per source file, shared by the fuzz targets.
    file(RELATIVE_PATH objects ${PROJECT_SOURCE_DIR} ${path})
    string(MAKE_C_IDENTIFIER "fuzzobj_${objects}" objects)
    if(NOT TARGET ${objects})
      add_library(${objects} OBJECT ${path})
      target_compile_options(${objects} PRIVATE ${flags})
      target_include_directories(${objects}
        PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
    endif()
    target_link_libraries(${objects} PRIVATE ${ARG_DEPS})
    target_link_libraries(${name} PRIVATE ${objects})
  endforeach()
  target_include_directories(${name}
    PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(${name} PRIVATE ${flags})
  target_link_options(${name} PRIVATE ${flags})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  add_dependencies(fuzzers ${name})
  set(max_len 4096)
  if(ARG_MAX_LEN)
    set(max_len ${ARG_MAX_LEN})
  endif()
  set(dict -)
  if(ARG_DICT)
    get_filename_component(dict ${ARG_DICT} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  set(seeds -)
  if(ARG_SEEDS)
    get_filename_component(seeds ${ARG_SEEDS} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  set_property(GLOBAL APPEND PROPERTY MSB_FUZZ_TARGETS
               "${name}\t$<TARGET_FILE:${name}>\t${max_len}\t${dict}\t${seeds}\n")
endfunction()

# Writes the list of fuzz targets once every directory has declared its own.
function(msb_write_fuzz_manifest)
  get_property(lines GLOBAL PROPERTY MSB_FUZZ_TARGETS)
  string(JOIN "" content ${lines})
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/fuzz_targets.tsv CONTENT "${content}")
endfunction()

if(MSB_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "MSB_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++-14")
  endif()
  # `cmake --build <dir> --target fuzzers` builds them all.
  add_custom_target(fuzzers)
  cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL msb_write_fuzz_manifest)
endif()

include(GoogleTest)
