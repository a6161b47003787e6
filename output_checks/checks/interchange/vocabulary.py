"""The lists the interchange rules read: which FHIR resources describe a person, which are definitions or
aggregates, and which HL7 v2 segments and message families carry a patient. Data, not logic."""

from __future__ import annotations

# A person in their own right: always individual-level.
FHIR_PERSONS = frozenset({"Patient", "Person", "RelatedPerson"})

# Clinical and administrative records about one person (FHIR R4): individual-level when they name a subject.
FHIR_PERSON_LEVEL = frozenset({
    "Account", "AdverseEvent", "AllergyIntolerance", "Appointment", "AppointmentResponse", "BodyStructure",
    "CarePlan", "CareTeam", "ChargeItem", "Claim", "ClaimResponse", "ClinicalImpression", "Communication",
    "CommunicationRequest", "Composition", "Condition", "Consent", "Coverage", "CoverageEligibilityRequest",
    "CoverageEligibilityResponse", "DetectedIssue", "DeviceRequest", "DeviceUseStatement", "DiagnosticReport",
    "DocumentManifest", "DocumentReference", "Encounter", "EnrollmentRequest", "EpisodeOfCare",
    "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal", "GuidanceResponse", "ImagingStudy",
    "Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation", "Invoice", "List", "Media",
    "MedicationAdministration", "MedicationDispense", "MedicationRequest", "MedicationStatement",
    "MolecularSequence", "NutritionOrder", "Observation", "Procedure", "QuestionnaireResponse", "RequestGroup",
    "ResearchSubject", "RiskAssessment", "Schedule", "ServiceRequest", "Specimen", "SupplyDelivery",
    "SupplyRequest", "Task", "VisionPrescription",
})  # fmt: skip

# Definitions, terminology and conformance: describe no one.
FHIR_DEFINITIONS = frozenset({
    "ActivityDefinition", "CapabilityStatement", "ChargeItemDefinition", "CodeSystem", "CompartmentDefinition",
    "ConceptMap", "EventDefinition", "Evidence", "EvidenceVariable", "ExampleScenario", "GraphDefinition",
    "ImplementationGuide", "Library", "Measure", "MessageDefinition", "NamingSystem", "ObservationDefinition",
    "OperationDefinition", "OperationOutcome", "PlanDefinition", "Questionnaire", "ResearchDefinition",
    "ResearchElementDefinition", "ResearchStudy", "SearchParameter", "SpecimenDefinition", "StructureDefinition",
    "StructureMap", "SubscriptionTopic", "TerminologyCapabilities", "TestScript", "ValueSet", "Medication",
    "MedicationKnowledge", "Substance", "Organization", "Location", "HealthcareService", "Endpoint",
})  # fmt: skip

# Containers judged by what they hold.
FHIR_CONTAINERS = frozenset({"Bundle", "Parameters"})

# Fields through which a FHIR resource names the person it is about.
FHIR_SUBJECT_FIELDS = ("subject", "patient", "beneficiary", "individual", "member", "for", "focus")

# HL7 v2 segments that carry a patient, a visit or a patient's result.
HL7_PATIENT_SEGMENTS = frozenset({"PID", "PD1", "NK1", "PV1", "PV2", "MRG", "IN1", "IN2", "GT1", "OBX", "AL1",
                                  "DG1", "PR1", "TXA", "RXA", "RXE", "RXO", "SPM", "IAM"})  # fmt: skip

# HL7 v2 message families about a patient (MSH-9's first component).
HL7_PATIENT_MESSAGES = frozenset({"ADT", "ORU", "ORM", "OML", "ORL", "OMG", "OMP", "OUL", "SIU", "DFT", "MDM",
                                  "VXU", "VXR", "RDE", "RDS", "RAS", "RGV", "BAR", "PPR", "PGL", "REF", "RRI",
                                  "RSP", "RDR", "OPL", "OPR", "CCR", "CCU", "PEX", "EHC", "RPA", "RQA"})  # fmt: skip
