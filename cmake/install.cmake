# Install rules for the C++ library: the static library, the public headers and
# a relocatable CMake package, so that a consumer writes
#   find_package(meprop CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE meprop::meprop)
# Destinations are set in the top-level CMakeLists.txt (GNU layout, or inside
# the Python package when building a wheel).
include(CMakePackageConfigHelpers)

set_target_properties(meprop PROPERTIES EXPORT_NAME meprop)
install(TARGETS meprop
  EXPORT mepropTargets
  ARCHIVE DESTINATION "${MEPROP_INSTALL_LIBDIR}"
  INCLUDES DESTINATION "${MEPROP_INSTALL_INCLUDEDIR}")
install(DIRECTORY cpp/include/meprop
  DESTINATION "${MEPROP_INSTALL_INCLUDEDIR}"
  FILES_MATCHING PATTERN "*.hpp")
install(EXPORT mepropTargets
  NAMESPACE meprop::
  DESTINATION "${MEPROP_INSTALL_CMAKEDIR}")

# All paths in the package are relative to its own location, so the installed
# tree (or the wheel's copy of it) can be moved.
configure_package_config_file(
  cmake/mepropConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/mepropConfig.cmake"
  INSTALL_DESTINATION "${MEPROP_INSTALL_CMAKEDIR}"
  PATH_VARS MEPROP_INSTALL_INCLUDEDIR)

# Before 1.0 a minor release may change the API (semantic versioning's rule
# for 0.y.z), so a request for 0.1 accepts 0.1.x only; from 1.0 on, any later
# release with the same major version is accepted.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_meprop_compatibility SameMinorVersion)
else()
  set(_meprop_compatibility SameMajorVersion)
endif()
write_basic_package_version_file(
  "${CMAKE_CURRENT_BINARY_DIR}/mepropConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY ${_meprop_compatibility})

install(FILES
  "${CMAKE_CURRENT_BINARY_DIR}/mepropConfig.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/mepropConfigVersion.cmake"
  DESTINATION "${MEPROP_INSTALL_CMAKEDIR}")
