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

include(GoogleTest)
